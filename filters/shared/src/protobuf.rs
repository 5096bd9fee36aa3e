//! The protobuf wire format (proto3), just enough to speak small gRPC protocols by hand: a writer
//! for messages and a reader that walks a message's fields. Generated code would pull a runtime
//! and descriptors into every `.wasm`; the messages these filters exchange have a handful of
//! fields each.

/// Builds one message, field by field. Zero values are the caller's to skip (proto3 omits them).
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LENGTH_DELIMITED: u64 = 2;
const FIXED32: u64 = 5;

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8 & 0x7f) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        self.varint((u64::from(field) << 3) | wire_type);
    }

    /// An integer, bool or enum field (`uint32`, `uint64`, `int64` ≥ 0, enums).
    pub fn uint(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, VARINT);
        self.varint(value);
        self
    }

    pub fn bytes(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, LENGTH_DELIMITED);
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    pub fn string(&mut self, field: u32, value: &str) -> &mut Self {
        self.bytes(field, value.as_bytes())
    }

    /// An embedded message, built by `build`.
    pub fn message(&mut self, field: u32, build: impl FnOnce(&mut Writer)) -> &mut Self {
        let mut inner = Writer::new();
        build(&mut inner);
        self.bytes(field, &inner.bytes)
    }
}

/// One field's value as it sits on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Strings, bytes, embedded messages and packed repeated fields.
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    /// The value of a varint field (`int32`, `uint64`, `bool`, an enum…); `None` for any other
    /// wire type, which such a field never has in a well-formed message.
    pub fn as_varint(self) -> Option<u64> {
        match self {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The message is not valid protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Walks the fields of one message, in wire order; unknown fields are the caller's to ignore.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().ok_or(Malformed)?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.rest.len() {
            return Err(Malformed);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field number and value, `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, Malformed> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        if field == 0 {
            return Err(Malformed);
        }
        let value = match key & 7 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Malformed)?)),
            LENGTH_DELIMITED => {
                let len = usize::try_from(self.varint()?).map_err(|_| Malformed)?;
                Value::Bytes(self.take(len)?)
            }
            FIXED32 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| Malformed)?)),
            // Groups (3, 4) are proto2-only and never appear in the messages read here.
            _ => return Err(Malformed),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, Malformed> {
        let mut reader = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(field) = reader.next_field()? {
            out.push(field);
        }
        Ok(out)
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn writes_what_the_reader_reads_back() {
        let mut w = Writer::new();
        w.string(1, "domain")
            .uint(3, 300)
            .message(2, |m| {
                m.string(1, "k");
            })
            .uint(4, u64::MAX);
        let bytes = w.into_bytes();
        // 300 is the protobuf documentation's varint example: ac 02.
        assert_eq!(&bytes[..10], &[0x0a, 6, b'd', b'o', b'm', b'a', b'i', b'n', 0x18, 0xac]);
        assert_eq!(
            fields(&bytes).unwrap(),
            vec![
                (1, Value::Bytes(b"domain")),
                (3, Value::Varint(300)),
                (2, Value::Bytes(&[0x0a, 1, b'k'])),
                (4, Value::Varint(u64::MAX)),
            ]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reads_fixed_width_fields() {
        let bytes = [0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0x15, 2, 0, 0, 0];
        assert_eq!(
            fields(&bytes).unwrap(),
            vec![(1, Value::Fixed64(1)), (2, Value::Fixed32(2))]
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn refuses_truncated_and_invalid_input() {
        for bad in [
            &[0x0a, 5, b'a'][..],                                                          // length past the end
            &[0x08][..],                                                                   // varint missing
            &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..], // > 64 bits
            &[0x0b][..],                                                                   // group start
            &[0x00, 0x01][..],                                                             // field 0
            &[0x0d, 1, 2][..],                                                             // short fixed32
        ] {
            assert_eq!(fields(bad), Err(Malformed), "{bad:?}");
        }
    }
}
