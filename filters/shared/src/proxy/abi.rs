//! The proxy-wasm ABI 0.2.1 as the host sees it: the functions the host gives the module, and the
//! ones the module gives the host. The workspace's only `unsafe` code, kept to moving bytes
//! across the boundary; everything here is a thin, safe wrapper, and every decision is made in
//! [`super::dispatch`] and the adapter above it.
//!
//! Only the callbacks the filters use are exported. A host does not call a callback a module does
//! not export (proxy-wasm-cpp-host checks each one), so a stream costs no VM entry for its body
//! chunks, `on_log` or `on_done`.
//!
//! Status codes and enum arguments cross as plain `u32`s: a value the host adds later must not be
//! undefined behaviour here.
#![allow(unsafe_code)]

use super::dispatch;

/// A host call's status other than OK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u32);

impl Status {
    pub const NOT_FOUND: Status = Status(1);
    pub const CAS_MISMATCH: Status = Status(8);
}

fn check(status: u32) -> Result<(), Status> {
    if status == 0 {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// The ABI's header maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    CallResponseHeaders = 6,
}

/// The ABI's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    PluginConfiguration = 7,
}

/// The ABI's metric kinds (only counters are used).
const METRIC_COUNTER: u32 = 0;

/// An empty header map in the ABI's encoding: a pair count of 0.
const NO_PAIRS: [u8; 4] = [0; 4];

/// `proxy_continue_stream`'s request direction.
const STREAM_HTTP_REQUEST: u32 = 0;

mod host {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
        pub fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer: u32,
            start: usize,
            max_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_replace_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_add_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        pub fn proxy_get_property(path: *const u8, path_size: usize, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_set_property(path: *const u8, path_size: usize, value: *const u8, value_size: usize) -> u32;
        pub fn proxy_get_shared_data(
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
            cas: *mut u32,
        ) -> u32;
        pub fn proxy_set_shared_data(
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
        #[allow(clippy::too_many_arguments, reason = "the ABI's signature")]
        pub fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        #[allow(clippy::too_many_arguments, reason = "the ABI's signature")]
        pub fn proxy_http_call(
            upstream: *const u8,
            upstream_size: usize,
            headers: *const u8,
            headers_size: usize,
            body: *const u8,
            body_size: usize,
            trailers: *const u8,
            trailers_size: usize,
            timeout_ms: u32,
            token: *mut u32,
        ) -> u32;
        #[allow(clippy::too_many_arguments, reason = "the ABI's signature")]
        pub fn proxy_grpc_call(
            service: *const u8,
            service_size: usize,
            service_name: *const u8,
            service_name_size: usize,
            method: *const u8,
            method_size: usize,
            metadata: *const u8,
            metadata_size: usize,
            message: *const u8,
            message_size: usize,
            timeout_ms: u32,
            token: *mut u32,
        ) -> u32;
        pub fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
        pub fn proxy_increment_metric(id: u32, offset: i64) -> u32;
        pub fn proxy_call_foreign_function(
            name: *const u8,
            name_size: usize,
            arguments: *const u8,
            arguments_size: usize,
            results: *mut *mut u8,
            results_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_effective_context(context_id: u32) -> u32;
    }

    #[cfg(target_os = "wasi")]
    extern "C" {
        /// Runs the static constructors (`.init_array`), which register the filters.
        pub fn __wasm_call_ctors();
    }
}

/// Memory the host asks for to hand the module bytes. The host then gives the same pointer and
/// size back through a host call's out-parameters, and [`take`] owns it again.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    Box::into_raw(vec![0u8; size].into_boxed_slice()).cast::<u8>()
}

/// Bytes the host wrote into memory it had from [`proxy_on_memory_allocate`]; `None` for no
/// buffer at all.
fn take(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer from the host is one `proxy_on_memory_allocate` returned for
    // exactly `size` bytes, handed over once.
    let bytes = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, size)) };
    Some(bytes.into_vec())
}

/// A host call that hands back a buffer: `None` when the host has none.
fn returned(call: impl FnOnce(*mut *mut u8, *mut usize) -> u32) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        0 => Ok(take(data, size)),
        1 | 7 => Ok(None), // NotFound, Empty
        status => Err(Status(status)),
    }
}

pub fn log(level: u32, message: &str) {
    // SAFETY (every host call below): the pointers are to live slices of the given sizes, and
    // out-parameters to live locals.
    unsafe { host::proxy_log(level, message.as_ptr(), message.len()) };
}

pub fn current_time_ns() -> Result<u64, Status> {
    let mut time = 0u64;
    check(unsafe { host::proxy_get_current_time_nanoseconds(&mut time) })?;
    Ok(time)
}

pub fn set_tick_period_ms(period: u32) -> Result<(), Status> {
    check(unsafe { host::proxy_set_tick_period_milliseconds(period) })
}

pub fn buffer(buffer: BufferType, start: usize, max_size: usize) -> Result<Option<Vec<u8>>, Status> {
    returned(|data, size| unsafe { host::proxy_get_buffer_bytes(buffer as u32, start, max_size, data, size) })
}

/// A header map in the ABI's encoding (see [`crate::wire`]).
pub fn header_map(map: MapType) -> Result<Option<Vec<u8>>, Status> {
    returned(|data, size| unsafe { host::proxy_get_header_map_pairs(map as u32, data, size) })
}

pub fn replace_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe {
        host::proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn add_header(map: MapType, name: &str, value: &[u8]) -> Result<(), Status> {
    check(unsafe {
        host::proxy_add_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
    })
}

pub fn remove_header(map: MapType, name: &str) -> Result<(), Status> {
    check(unsafe { host::proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// A property by its encoded path (see [`crate::wire::property_path`]).
pub fn property(path: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    returned(|data, size| unsafe { host::proxy_get_property(path.as_ptr(), path.len(), data, size) })
}

pub fn set_property(path: &[u8], value: &[u8]) -> Result<(), Status> {
    check(unsafe { host::proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// A shared-data value and its CAS; `None` if the key has none.
pub fn shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let mut cas = 0u32;
    let value =
        returned(|data, size| unsafe { host::proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas) })?;
    Ok(value.map(|value| (value, cas)))
}

/// `cas` 0: write whatever is there.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    check(unsafe { host::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) })
}

/// `headers` in the ABI's map encoding. No gRPC status (-1): an HTTP answer.
pub fn send_local_response(status: u32, body: &[u8], headers: &[u8]) -> Result<(), Status> {
    check(unsafe {
        host::proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

pub fn resume_http_request() -> Result<(), Status> {
    check(unsafe { host::proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// `headers` in the ABI's map encoding; the call's token.
pub fn http_call(cluster: &str, headers: &[u8], body: &[u8], timeout_ms: u32) -> Result<u32, Status> {
    let mut token = 0u32;
    check(unsafe {
        host::proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            NO_PAIRS.as_ptr(),
            NO_PAIRS.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

/// A unary gRPC call without initial metadata; its token.
pub fn grpc_call(
    service: &[u8],
    service_name: &str,
    method: &str,
    message: &[u8],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let mut token = 0u32;
    check(unsafe {
        host::proxy_grpc_call(
            service.as_ptr(),
            service.len(),
            service_name.as_ptr(),
            service_name.len(),
            method.as_ptr(),
            method.len(),
            NO_PAIRS.as_ptr(),
            NO_PAIRS.len(),
            message.as_ptr(),
            message.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    Ok(token)
}

pub fn define_counter(name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    check(unsafe { host::proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    check(unsafe { host::proxy_increment_metric(id, offset) })
}

pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    check(unsafe {
        host::proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    })?;
    Ok(take(data, size))
}

pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    check(unsafe { host::proxy_set_effective_context(context_id) })
}

// What the module gives the host. Each is a trampoline into `dispatch`.

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The module's start, after the host instantiated it: the static constructors register the
/// filters, then the module starts.
#[no_mangle]
pub extern "C" fn _initialize() {
    #[cfg(target_os = "wasi")]
    // SAFETY: called once, by the host, before any other export.
    unsafe {
        host::__wasm_call_ctors();
    }
    super::module::start();
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    dispatch::on_context_create(context_id, root_context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, _configuration_size: usize) -> u32 {
    u32::from(dispatch::on_configure(context_id))
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    dispatch::on_tick(context_id);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    dispatch::on_request_headers(context_id) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(context_id: u32, _trailers: usize) -> u32 {
    dispatch::on_request_trailers(context_id) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, _headers: usize, _end_of_stream: u32) -> u32 {
    dispatch::on_response_headers(context_id) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(context_id: u32, _trailers: usize) -> u32 {
    dispatch::on_response_trailers(context_id) as u32
}

#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _context_id: u32,
    token: u32,
    headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    dispatch::on_http_call_response(token, headers, body_size);
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive(_context_id: u32, token: u32, response_size: usize) {
    dispatch::on_grpc_answer(token, 0, response_size);
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_close(_context_id: u32, token: u32, status: u32) {
    dispatch::on_grpc_answer(token, status, 0);
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    dispatch::on_delete(context_id);
}
