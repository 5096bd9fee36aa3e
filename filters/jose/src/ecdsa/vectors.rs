//! Known answers for `ecdsa`: RFC 6979 appendix A.2.5 and A.2.6 (P-256 with SHA-256, P-384 with
//! SHA-384), signatures made by the OpenSSL 3.0 command line over JWS signing inputs, and a
//! selection of Wycheproof's IEEE P1363 (raw `r || s`) vectors from
//! github.com/C2SP/wycheproof `testvectors_v1/ecdsa_secp{256r1_sha256,384r1_sha384}_p1363_test.json`
//! (Apache-2.0): every kind of arithmetic edge case (point doubling and infinity inside the
//! multiplication, x(R) above n, u1 or u2 of 1 or n - 1, extreme k, r + n comparisons), at most two
//! of a kind. Hex, except the OpenSSL ones (JWK coordinates and compact tokens, base64url).

pub struct Rfc6979 {
    pub ux: &'static str,
    pub uy: &'static str,
    /// The private key, to check that the curve crates' RFC 6979 signer gives these very bytes.
    pub x: &'static str,
    /// (message, r || s).
    pub signatures: [(&'static str, &'static str); 2],
}

pub const RFC6979_P256: Rfc6979 = Rfc6979 {
    x: "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721",
    ux: "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
    uy: "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
    signatures: [
        (
            "sample",
            "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716\
             f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
        ),
        (
            "test",
            "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367\
             019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083",
        ),
    ],
};

pub const RFC6979_P384: Rfc6979 = Rfc6979 {
    x: "6b9d3dad2e1b8c1c05b19875b6659f4de23c3b667bf297ba9aa47740787137d896d5724e4c70a825f872c9ea60d2edf5",
    ux: "ec3a4e415b4e19a4568618029f427fa5da9a8bc4ae92e02e06aae5286b300c64def8f0ea9055866064a254515480bc13",
    uy: "8015d9b72d7d57244ea8ef9ac0c621896708a59367f9dfb9f54ca84b3f1c9db1288b231c3ae0d4fe7344fd2533264720",
    signatures: [
        (
            "sample",
            "94edbb92a5ecb8aad4736e56c691916b3f88140666ce9fa73d64c4ea95ad133c81a648152e44acf96e36dd1e80fabe46\
             99ef4aeb15f178cea1fe40db2603138f130e740a19624526203b6351d0a3a94fa329c145786e679e7b82c71a38628ac8",
        ),
        (
            "test",
            "8203b63d3c853e8d77227fb377bcf7b7b772e97892a80f36ab775d509d7a5feb0542a7f0812998da8f1dd3ca3cf023db\
             ddd0760448d42d8a43af45af836fce4de8be06b485e9b61b827c2f13173923e06a739f040649a667bf3b828246baa5a5",
        ),
    ],
};

/// A key and a token from `openssl ecparam -genkey`, `openssl dgst -sha256|-sha384 -sign` (DER,
/// converted to `r || s`), with the SPKI of `openssl ec -pubout -outform DER`.
pub struct OpenSsl {
    pub crv: &'static str,
    pub x: &'static str,
    pub y: &'static str,
    pub spki: &'static str,
    pub token: &'static str,
}

pub const OPENSSL: &[OpenSsl] = &[
    OpenSsl {
        crv: "P-256",
        x: "HKAIZnHdI_ktJugR_RMIYq7OE9zYdAiZOAbeZpf6Nus",
        y: "9jJwM3PMUKkjG-ODorW9XDGcuKtzwy_DjXfXYeecoQo",
        spki: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHKAIZnHdI_ktJugR_RMIYq7OE9zYdAiZOAbeZpf6Nuv2MnAzc8xQqSMb44Oitb1cMZy4q3PDL8ONd9dh55yhCg",
        token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcGVuc3NsLTI1Ni0xIn0.jR57IRSTN2g8jbAm2fAMwI0iUBoeBO4V29CqyH-qRaVEAYqFNhGRHbqteo42KORD6OhQtc0d70g-wVdvwHDMAA",
    },
    OpenSsl {
        crv: "P-256",
        x: "HKAIZnHdI_ktJugR_RMIYq7OE9zYdAiZOAbeZpf6Nus",
        y: "9jJwM3PMUKkjG-ODorW9XDGcuKtzwy_DjXfXYeecoQo",
        spki: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHKAIZnHdI_ktJugR_RMIYq7OE9zYdAiZOAbeZpf6Nuv2MnAzc8xQqSMb44Oitb1cMZy4q3PDL8ONd9dh55yhCg",
        token: "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiZXhwIjoxOTAwMDAwMDAwfQ.ld8xQGgE_hZKEZN3MU72kx0lot7qq0Efm2L6MGH2SvyI05McVvVdYp7eYM363r_s6kuqxQ08SSbNWnofJ4cM0w",
    },
    OpenSsl {
        crv: "P-256",
        x: "VrCxD6ww2KuJY0gmU_lPvxXO2mrMDcZiAOkCJp2hxJw",
        y: "8W01q4sCtBGTzNvcfK5UX0mRdGdTzTZ-_SpLIT5Rek4",
        spki: "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVrCxD6ww2KuJY0gmU_lPvxXO2mrMDcZiAOkCJp2hxJzxbTWriwK0EZPM29x8rlRfSZF0Z1PNNn79KkshPlF6Tg",
        token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJvcGVuc3NsLTI1Ni0yIn0.urvAh1l_z7CNfx91yN_b1KU7dIrn4z12ehVHKScLIXatI1ZH2JMfNygudVOi7dwrUUjyHgsSxuJWqg34lqk7Lw",
    },
    OpenSsl {
        crv: "P-384",
        x: "ookxP3DJpIfARERzPcObTzyXSvBAkJRfin_IbhGX_fvr4oKtSYE8FPerjUWwhQOZ",
        y: "oRTYzxKL2KktNP75RjG8S8hVsamxj8JCfgGNS9vmslKdmVNMc-uOaEQud3G9b8Q5",
        spki: "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEookxP3DJpIfARERzPcObTzyXSvBAkJRfin_IbhGX_fvr4oKtSYE8FPerjUWwhQOZoRTYzxKL2KktNP75RjG8S8hVsamxj8JCfgGNS9vmslKdmVNMc-uOaEQud3G9b8Q5",
        token: "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJvcGVuc3NsLTM4NC0xIn0.ldo-IXhmUqflgAJnGVm6RgZEjZLaeuz7cZsqSSFgB2vgl7bsTzWwShrr72TOdRgCXgBkWH-k0sOwXECTGvlIHeV2Mnq-jaVb8FYPth-cnrU0aMWnWFMwtryAvaRaFpBm",
    },
    OpenSsl {
        crv: "P-384",
        x: "ookxP3DJpIfARERzPcObTzyXSvBAkJRfin_IbhGX_fvr4oKtSYE8FPerjUWwhQOZ",
        y: "oRTYzxKL2KktNP75RjG8S8hVsamxj8JCfgGNS9vmslKdmVNMc-uOaEQud3G9b8Q5",
        spki: "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEookxP3DJpIfARERzPcObTzyXSvBAkJRfin_IbhGX_fvr4oKtSYE8FPerjUWwhQOZoRTYzxKL2KktNP75RjG8S8hVsamxj8JCfgGNS9vmslKdmVNMc-uOaEQud3G9b8Q5",
        token: "eyJhbGciOiJFUzM4NCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwiZXhwIjoxOTAwMDAwMDAwfQ.yn-Huwt_7pu7quAWnlfLLS2EOcJqThN1m7Q5of8QdDLFQSL46MJg8E4U9mL5l8EDtc8RGYK_zP7R7T2hWyU6TVyK86IvYc1bmEdrQ_Hz5KsbkFqS86uxQcIIVolxivAV",
    },
    OpenSsl {
        crv: "P-384",
        x: "sGqsC2ZtgOeOu-Lny-YY-l1qB9z9xLV1PVdWQ4wlOj7SwBaIZMdkRd0mh5NTamDN",
        y: "4Tx7Cp9FXzGdJKrDRlFSFlJ-llUBuQNxYRaD3oi9hALdaJsDlDR-hFlZeWuDtqv4",
        spki: "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEsGqsC2ZtgOeOu-Lny-YY-l1qB9z9xLV1PVdWQ4wlOj7SwBaIZMdkRd0mh5NTamDN4Tx7Cp9FXzGdJKrDRlFSFlJ-llUBuQNxYRaD3oi9hALdaJsDlDR-hFlZeWuDtqv4",
        token: "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJvcGVuc3NsLTM4NC0yIn0.WYnSdOlGCOqVNovIQFq9cNnbzb0ybmxjjonJptZvy_dmNGyPzDsm8nFF4VCxDr7WgDZ8FR--QU7xuCNcUw8p9TGIPWGMqndqLbnjrzexA4ra78SaI-77jnwKF_HqtsBT",
    },
];

pub struct WycheproofGroup {
    /// The public key's coordinates.
    pub x: &'static str,
    pub y: &'static str,
    pub cases: &'static [WycheproofCase],
}

pub struct WycheproofCase {
    pub id: u32,
    pub comment: &'static str,
    pub msg: &'static str,
    pub sig: &'static str,
    pub valid: bool,
}

pub const WYCHEPROOF_P256: &[WycheproofGroup] = &[
    WycheproofGroup {
        x: "2927b10512bae3eddcfe467828128bad2903269919f7086069c8c4df6c732838",
        y: "c7787964eaac00e5921fb1498a60f4606766b3d9685001558d1a974e7341513e",
        cases: &[
            WycheproofCase {
                id: 1,
                comment: "signature malleability",
                msg: "313233343030",
                sig: "2ba3a8be6b94d5ec80a6d9d1190a436effe50d85a1eee859b8cc6af9bd5c2e184cd60b855d442f5b3c7b11eb6c4e0ae7525fe710fab9aa7c77a67f79e6fadd76",
                valid: true,
            },
            WycheproofCase {
                id: 60,
                comment: "Edge case for Shamir multiplication",
                msg: "3639383139",
                sig: "64a1aab5000d0e804f3e2fc02bdee9be8ff312334e2ba16d11547c97711c898e6af015971cc30be6d1a206d4e013e0997772a2f91d73286ffd683b9bb2cf4f1b",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "0ad99500288d466940031d72a9f5445a4d43784640855bf0a69874d2de5fe103",
        y: "c5011e6ef2c42dcd50d5d3d29f99ae6eba2c80c9244f4c5422f0979ff0c3ba5e",
        cases: &[
            WycheproofCase {
                id: 115,
                comment: "k*G has a large x-coordinate",
                msg: "313233343030",
                sig: "000000000000000000000000000000004319055358e8617b0c46353d039cdaabffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: true,
            },
            WycheproofCase {
                id: 116,
                comment: "r too large",
                msg: "313233343030",
                sig: "ffffffff00000001000000000000000000000000fffffffffffffffffffffffcffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "ab05fd9d0de26b9ce6f4819652d9fc69193d0aa398f0fba8013e09c582204554",
        y: "19235271228c786759095d12b75af0692dd4103f19f6a8c32f49435a1e9b8d45",
        cases: &[
            WycheproofCase {
                id: 117,
                comment: "r,s are large",
                msg: "313233343030",
                sig: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254fffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "d0f73792203716afd4be4329faa48d269f15313ebbba379d7783c97bf3e890d9",
        y: "971f4a3206605bec21782bf5e275c714417e8f566549e6bc68690d2363c89cc1",
        cases: &[
            WycheproofCase {
                id: 138,
                comment: "small r and s^-1",
                msg: "313233343030",
                sig: "00000000000000000000000000000000000000000000000000000000000001008f1e3c7862c58b16bb76eddbb76eddbb516af4f63f2d74d76e0d28c9bb75ea88",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "083539fbee44625e3acaafa2fcb41349392cef0633a1b8fabecee0c133b10e99",
        y: "915c1ebe7bf00df8535196770a58047ae2a402f26326bb7d41d4d7616337911e",
        cases: &[
            WycheproofCase {
                id: 143,
                comment: "r and s^-1 are close to n",
                msg: "313233343030",
                sig: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc6324d5555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "8aeb368a7027a4d64abdea37390c0c1d6a26f399e2d9734de1eb3d0e19373874",
        y: "05bd13834715e1dbae9b875cf07bd55e1b6691c7f7536aef3b19bf7a4adf576d",
        cases: &[
            WycheproofCase {
                id: 152,
                comment: "s == 1",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c700000000000000000000000000000000000000000000000000000000000000001",
                valid: true,
            },
            WycheproofCase {
                id: 153,
                comment: "s == 0",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c700000000000000000000000000000000000000000000000000000000000000000",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "61722eaba731c697c7a9ba4d0afdbb5713d8aa12b0eab601bb33dbaf792c5adc",
        y: "272cd993b2b663aba5b3a26c101182ff178684945e83879e71598b95fe647dfc",
        cases: &[
            WycheproofCase {
                id: 154,
                comment: "edge case modular inverse",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c7002f676969f451a8ccafa4c4f09791810e6d632dbd60b1d5540f3284fbe1889b0",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "c4c91981e720e20d7e478ff19d09b95a98f58c0f469b72801a8ce844a3473165",
        y: "94afcd4188182e7779889b3258d0368ece1e66797fe7c648c6f0b9e26bd71871",
        cases: &[
            WycheproofCase {
                id: 155,
                comment: "edge case modular inverse",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c704e260962e33362ef0046126d2d5a4edc6947ab20e19b8ec19cf79e5908b6e628",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "b533d4695dd5b8c5e07757e55e6e516f7e2c88fa0239e23f60e8ec07dd70f287",
        y: "1b134ee58cc583278456863f33c3a85d881f7d4a39850143e29d4eaf009afe47",
        cases: &[
            WycheproofCase {
                id: 169,
                comment: "point at infinity during verify",
                msg: "313233343030",
                sig: "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "f50d371b91bfb1d7d14e1323523bc3aa8cbf2c57f9e284de628c8b4536787b86",
        y: "f94ad887ac94d527247cd2e7d0c8b1291c553c9730405380b14cbb209f5fa2dd",
        cases: &[
            WycheproofCase {
                id: 170,
                comment: "edge case for signature malleability",
                msg: "313233343030",
                sig: "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a97fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "68ec6e298eafe16539156ce57a14b04a7047c221bafc3a582eaeb0d857c4d946",
        y: "97bed1af17850117fdb39b2324f220a5698ed16c426a27335bb385ac8ca6fb30",
        cases: &[
            WycheproofCase {
                id: 171,
                comment: "edge case for signature malleability",
                msg: "313233343030",
                sig: "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a97fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a9",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "69da0364734d2e530fece94019265fefb781a0f1b08f6c8897bdf6557927c8b8",
        y: "66d2d3c7dcd518b23d726960f069ad71a933d86ef8abbcce8b20f71e2a847002",
        cases: &[
            WycheproofCase {
                id: 172,
                comment: "u1 == 1",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c70bb5a52f42f9c9261ed4361f59422a1e30036e7c32b270c8807a419feca605023",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "d8adc00023a8edc02576e2b63e3e30621a471e2b2320620187bf067a1ac1ff32",
        y: "33e2b50ec09807accb36131fff95ed12a09a86b4ea9690aa32861576ba2362e1",
        cases: &[
            WycheproofCase {
                id: 173,
                comment: "u1 == n - 1",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c7044a5ad0ad0636d9f12bc9e0a6bdd5e1cbcb012ea7bf091fcec15b0c43202d52e",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3623ac973ced0a56fa6d882f03a7d5c7edca02cfc7b2401fab3690dbe75ab785",
        y: "8db06908e64b28613da7257e737f39793da8e713ba0643b92e9bb3252be7f8fe",
        cases: &[
            WycheproofCase {
                id: 174,
                comment: "u2 == 1",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c70555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "cf04ea77e9622523d894b93ff52dc3027b31959503b6fa3890e5e04263f922f1",
        y: "e8528fb7c006b3983c8b8400e57b4ed71740c2f3975438821199bedeaecab2e9",
        cases: &[
            WycheproofCase {
                id: 175,
                comment: "u2 == n - 1",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c70aaaaaaaa00000000aaaaaaaaaaaaaaaa7def51c91a0fbf034d26872ca84218e1",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "db7a2c8a1ab573e5929dc24077b508d7e683d49227996bda3e9f78dbeff77350",
        y: "4f417f3bc9a88075c2e0aadd5a13311730cf7cc76a82f11a36eaf08a6c99a206",
        cases: &[
            WycheproofCase {
                id: 176,
                comment: "edge case for u1",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffde91e1ba60fdedb76a46bcb51dc0b8b4b7e019f0a28721885fa5d3a8196623397",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "dead11c7a5b396862f21974dc4752fadeff994efe9bbd05ab413765ea80b6e1f",
        y: "1de3f0640e8ac6edcf89cff53c40e265bb94078a343736df07aa0318fc7fe1ff",
        cases: &[
            WycheproofCase {
                id: 177,
                comment: "edge case for u1",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdfdea5843ffeb73af94313ba4831b53fe24f799e525b1e8e8c87b59b95b430ad9",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "67e6f659cdde869a2f65f094e94e5b4dfad636bbf95192feeed01b0f3deb7460",
        y: "a37e0a51f258b7aeb51dfe592f5cfd5685bbe58712c8d9233c62886437c38ba0",
        cases: &[
            WycheproofCase {
                id: 190,
                comment: "edge case for u2",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd7fffffffaaaaaaaaffffffffffffffffe9a2538f37b28a2c513dee40fecbb71a",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "2eb6412505aec05c6545f029932087e490d05511e8ec1f599617bb367f9ecaaf",
        y: "805f51efcc4803403f9b1ae0124890f06a43fedcddb31830f6669af292895cb0",
        cases: &[
            WycheproofCase {
                id: 191,
                comment: "edge case for u2",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdb62f26b5f2a2b26f6de86d42ad8a13da3ab3cccd0459b201de009e526adf21f2",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "5b812fd521aafa69835a849cce6fbdeb6983b442d2444fe70e134c027fc46963",
        y: "838a40f2a36092e9004e92d8d940cf5638550ce672ce8b8d4e15eba5499249e9",
        cases: &[
            WycheproofCase {
                id: 204,
                comment: "point duplication during verification",
                msg: "313233343030",
                sig: "6f2347cab7dd76858fe0555ac3bc99048c4aacafdfb6bcbe05ea6c42c4934569bb726660235793aa9957a61e76e00c2c435109cf9a15dd624d53f4301047856b",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "5b812fd521aafa69835a849cce6fbdeb6983b442d2444fe70e134c027fc46963",
        y: "7c75bf0c5c9f6d17ffb16d2726bf30a9c7aaf31a8d317472b1ea145ab66db616",
        cases: &[
            WycheproofCase {
                id: 205,
                comment: "duplication bug",
                msg: "313233343030",
                sig: "6f2347cab7dd76858fe0555ac3bc99048c4aacafdfb6bcbe05ea6c42c4934569bb726660235793aa9957a61e76e00c2c435109cf9a15dd624d53f4301047856b",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "6adda82b90261b0f319faa0d878665a6b6da497f09c903176222c34acfef72a6",
        y: "47e6f50dcc40ad5d9b59f7602bb222fad71a41bf5e1f9df4959a364c62e488d9",
        cases: &[
            WycheproofCase {
                id: 206,
                comment: "point with x-coordinate 0",
                msg: "313233343030",
                sig: "0000000000000000000000000000000000000000000000000000000000000001555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "2fca0d0a47914de77ed56e7eccc3276a601120c6df0069c825c8f6a01c9f3820",
        y: "65f3450a1d17c6b24989a39beb1c7decfca8384fbdc294418e5d807b3c6ed7de",
        cases: &[
            WycheproofCase {
                id: 207,
                comment: "point with x-coordinate 0",
                msg: "313233343030",
                sig: "010000000000000000000000000000000000000000000000000000000000000000003333333300000000333333333333333325c7cbbc549e52e763f1f55a327a3aa9",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "dd86d3b5f4a13e8511083b78002081c53ff467f11ebd98a51a633db76665d250",
        y: "45d5c8200c89f2fa10d849349226d21d8dfaed6ff8d5cb3e1b7e17474ebc18f7",
        cases: &[
            WycheproofCase {
                id: 208,
                comment: "comparison with point at infinity",
                msg: "313233343030",
                sig: "555555550000000055555555555555553ef7a8e48d07df81a693439654210c703333333300000000333333333333333325c7cbbc549e52e763f1f55a327a3aa9",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "4fea55b32cb32aca0c12c4cd0abfb4e64b0f5a516e578c016591a93f5a0fbcc5",
        y: "d7d3fd10b2be668c547b212f6bb14c88f0fecd38a8a4b2c785ed3be62ce4b280",
        cases: &[
            WycheproofCase {
                id: 209,
                comment: "extreme value for k and edgecase s",
                msg: "313233343030",
                sig: "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "c6a771527024227792170a6f8eee735bf32b7f98af669ead299802e32d7c3107",
        y: "bc3b4b5e65ab887bbd343572b3e5619261fe3a073e2ffd78412f726867db589e",
        cases: &[
            WycheproofCase {
                id: 210,
                comment: "extreme value for k and s^-1",
                msg: "313233343030",
                sig: "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978b6db6db6249249254924924924924924625bd7a09bec4ca81bcdd9f8fd6b63cc",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "851c2bbad08e54ec7a9af99f49f03644d6ec6d59b207fec98de85a7d15b956ef",
        y: "cee9960283045075684b410be8d0f7494b91aa2379f60727319f10ddeb0fe9d6",
        cases: &[
            WycheproofCase {
                id: 211,
                comment: "extreme value for k and s^-1",
                msg: "313233343030",
                sig: "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc47669978cccccccc00000000cccccccccccccccc971f2ef152794b9d8fc7d568c9e8eaa7",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "0d935bf9ffc115a527735f729ca8a4ca23ee01a4894adf0e3415ac84e808bb34",
        y: "3195a3762fea29ed38912bd9ea6c4fde70c3050893a4375850ce61d82eba33c5",
        cases: &[
            WycheproofCase {
                id: 214,
                comment: "extreme value for k",
                msg: "313233343030",
                sig: "7cf27b188d034f7e8a52380304b51ac3c08969e277f21b35a60b48fc4766997816a4502e2781e11ac82cbc9d1edd8c981584d13e18411e2f6e0478c34416e3bb",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "5e59f50708646be8a589355014308e60b668fb670196206c41e748e64e4dca21",
        y: "5de37fee5c97bcaf7144d5b459982f52eeeafbdf03aacbafef38e213624a01de",
        cases: &[
            WycheproofCase {
                id: 215,
                comment: "extreme value for k and edgecase s",
                msg: "313233343030",
                sig: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296555555550000000055555555555555553ef7a8e48d07df81a693439654210c70",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "8d3c2c2c3b765ba8289e6ac3812572a25bf75df62d87ab7330c3bdbad9ebfa5c",
        y: "4c6845442d66935b238578d43aec54f7caa1621d1af241d4632e0b780c423f5d",
        cases: &[
            WycheproofCase {
                id: 220,
                comment: "extreme value for k",
                msg: "313233343030",
                sig: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c29616a4502e2781e11ac82cbc9d1edd8c981584d13e18411e2f6e0478c34416e3bb",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        y: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        cases: &[
            WycheproofCase {
                id: 221,
                comment: "public key shares x-coordinate with generator",
                msg: "313233343030",
                sig: "bb5a52f42f9c9261ed4361f59422a1e30036e7c32b270c8807a419feca605023249249246db6db6ddb6db6db6db6db6dad4591868595a8ee6bf5f864ff7be0c2",
                valid: false,
            },
            WycheproofCase {
                id: 222,
                comment: "public key shares x-coordinate with generator",
                msg: "313233343030",
                sig: "44a5ad0ad0636d9f12bc9e0a6bdd5e1cbcb012ea7bf091fcec15b0c43202d52e249249246db6db6ddb6db6db6db6db6dad4591868595a8ee6bf5f864ff7be0c2",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "264d796a0dab9b376d34eea6fe297dde1c7b73e53944bc96c8f1e8a6850bb6c9",
        y: "cf5308020eed460c649ddae61d4ef8bb79958113f106befaf4f18876d12a5e64",
        cases: &[
            WycheproofCase {
                id: 253,
                comment: "r = 5, x = 5 is valid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "0000000000000000000000000000000000000000000000000000000000000005ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "add76677e54a92e79bbee36a70e1754838273ec4b39295e4018a587290a7fc73",
        y: "f240d625642c943e610d80d953c5c6b8a12760a624ba3b90a0b7902755e1ae79",
        cases: &[
            WycheproofCase {
                id: 254,
                comment: "r = 6, x = 5 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "0000000000000000000000000000000000000000000000000000000000000006ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "264d796a0dab9b376d34eea6fe297dde1c7b73e53944bc96c8f1e8a6850bb6c9",
        y: "cf5308020eed460c649ddae61d4ef8bb79958113f106befaf4f18876d12a5e64",
        cases: &[
            WycheproofCase {
                id: 255,
                comment: "r = 5 + n, x = 5 is invalid; r was not reduced mod n",
                msg: "68656c6c6f2c20776f726c64",
                sig: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632556ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "e7e49dd82812432744fefe723f7f69663214ad1b85c02b2650b4ca0354743a32",
        y: "5223c51c415f457aec69cb019bbe3d27585b38f8b79c39dfea6c27c2f0d8146a",
        cases: &[
            WycheproofCase {
                id: 256,
                comment: "r = n - 3, x = n - 2 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254effffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "ce24c99032d52ac6ead23c0ae3ec68ef41e51a281fd457808c83136d7dcce90e",
        y: "8f7a154b551e9f39c59279357aa491b2a62bdebc2bb78613883fc72936c057e0",
        cases: &[
            WycheproofCase {
                id: 257,
                comment: "r = 3, x = n + 3 is the smallest possible x with a reduction",
                msg: "68656c6c6f2c20776f726c64",
                sig: "0000000000000000000000000000000000000000000000000000000000000003ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "c981c75ddfd3910387eb147098fe5658c43aaaa34c681cd6d514b6ad5b6baa6d",
        y: "14fbddb53a6e6db18e90602bc60f2e736d625765f7f2cca4be76f4eeccf12c18",
        cases: &[
            WycheproofCase {
                id: 258,
                comment: "r = 4, x = n + 3 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "0000000000000000000000000000000000000000000000000000000000000004ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "0ec505bc19b14a43e05678cccf07a443d3e871a2e19b68a4da91859a0650f324",
        y: "77300e4f64e9982d94dff5d294428bb37cc9be66117cae9c389d2d495f68b987",
        cases: &[
            WycheproofCase {
                id: 259,
                comment: "r = p - n + 5, x = 5 is invalid; r is too large to compare r + n with x",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000004319055358e8617b0c46353d039cdab3ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "d42ce21e730f3d2a84e949828574b4dceeb77d4f89556735f34fba03028ee3ed",
        y: "32daf8bfd3f0a7a0821170840f4e032056722386b35d9bdd4f4f450696f4fb52",
        cases: &[
            WycheproofCase {
                id: 260,
                comment: "r = 2^256 - n + 5, x = 5 is invalid; r + n is too large to compare r + n with x, and overflows 2^256 bits",
                msg: "68656c6c6f2c20776f726c64",
                sig: "00000000ffffffff00000000000000004319055258e8617b0c46353d039cdab4ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc63254e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "6955a72c0dad4ed60356f7692649b951fa8ea474bf1cc9549b96c68de4782dfa",
        y: "e012ffc24e92c72be71ff2622ee7e549dcb59e7b708f6921c4d4ea29512e2aba",
        cases: &[
            WycheproofCase {
                id: 261,
                comment: "s = 2^128",
                msg: "68656c6c6f2c20776f726c64",
                sig: "5f6d3aa0d327c13702513d4299f297ab182fcf670f96291fab19572e7a6e01c40000000000000000000000000000000100000000000000000000000000000000",
                valid: true,
            },
            WycheproofCase {
                id: 262,
                comment: "s = n - 2^128",
                msg: "68656c6c6f2c20776f726c64",
                sig: "5f6d3aa0d327c13702513d4299f297ab182fcf670f96291fab19572e7a6e01c4ffffffff00000000fffffffffffffffebce6faada7179e84f3b9cac2fc632551",
                valid: true,
            },
        ],
    },
];

pub const WYCHEPROOF_P384: &[WycheproofGroup] = &[
    WycheproofGroup {
        x: "2da57dda1089276a543f9ffdac0bff0d976cad71eb7280e7d9bfd9fee4bdb2f20f47ff888274389772d98cc5752138aa",
        y: "4b6d054d69dcf3e25ec49df870715e34883b1836197d76f8ad962e78f6571bbc7407b0d6091f9e4d88f014274406174f",
        cases: &[
            WycheproofCase {
                id: 1,
                comment: "signature malleability",
                msg: "313233343030",
                sig: "12b30abef6b5476fe6b612ae557c0425661e26b44b1bfe19daf2ca28e3113083ba8e4ae4cc45a0320abd3394f1c548d71840da9fc1d2f8f8900cf485d5413b8c2574ee3a8d4ca03995ca30240e09513805bf6209b58ac7aa9cff54eecd82b9f1",
                valid: true,
            },
            WycheproofCase {
                id: 60,
                comment: "Edge case for Shamir multiplication",
                msg: "3133323237",
                sig: "ac042e13ab83394692019170707bc21dd3d7b8d233d11b651757085bdd5767eabbb85322984f14437335de0cdf565684bd770d3ee4beadbabe7ca46e8c4702783435228d46e2dd360e322fe61c86926fa49c8116ec940f72ac8c30d9beb3e12f",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "4bf4e52f958427ebb5915fb8c9595551b4d3a3fdab67badd9d6c3093f425ba43630df71f42f0eb7ceaa94d9f6448a85d",
        y: "d30331588249fd2fdc0b309ec7ed8481bc16f27800c13d7db700fc82e1b1c8545aa0c0d3b56e3bfe789fc18a916887c2",
        cases: &[
            WycheproofCase {
                id: 147,
                comment: "k*G has a large x-coordinate",
                msg: "313233343030",
                sig: "000000000000000000000000000000000000000000000000389cb27e0bc8d21fa7e5f24cb74f58851313e696333ad68bffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: true,
            },
            WycheproofCase {
                id: 148,
                comment: "r too large",
                msg: "313233343030",
                sig: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffeffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "3623bb296b88f626d0f92656bf016f115b721277ccb4930739bfbd81f9c1e734630e0685d32e154e0b4a5c62e43851f6",
        y: "768356b4a5764c128c7b1105e3d778a89d1e01da297ede1bc4312c2583e0bbddd21613583dd09ab895c63be479f94576",
        cases: &[
            WycheproofCase {
                id: 149,
                comment: "r,s are large",
                msg: "313233343030",
                sig: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52972ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52971",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "0bb03fce3c01ebcf0873abd134a8682f5fb8dbffa22da674047e5c3e71e43de582ed6abb908c2e4faa5d96186278b6c1",
        y: "ba3b22123e68ccc56f17dd79ff15565706f71a0b6123c77af3cd88f0af024cc5259781516edcaf5fe990646e7b66999d",
        cases: &[
            WycheproofCase {
                id: 166,
                comment: "small r and s^-1",
                msg: "313233343030",
                sig: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000100489122448912244891224489122448912244891224489122347ce79bc437f4d071aaa92c7d6c882ae8734dc18cb0d553",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "52ca47dda99172cb8321495acf988548295988ec973c1b4ea9462c53e5768a704a936410ee847b5dbf1e9d0c131da6c7",
        y: "87a47027e6655792eb002d4228ee72f7c814c9a0cecbff267948f81c9903ac10eb35f6cb86369224ed609811cdf390f4",
        cases: &[
            WycheproofCase {
                id: 171,
                comment: "r and s^-1 are close to n",
                msg: "313233343030",
                sig: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc528f355555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "bd3d91f003e18adbea73079d4eba23b91fc17fcec14c9eb15a193fbc9ca39c8c747cd7a2c9623e05dd587ccbb8ab4c44",
        y: "3adb0a0706aa5ea7a68042082fccefc979612a7a1a3d694b00793b03f89bff866a8b97c8e77990c29360ce795036c764",
        cases: &[
            WycheproofCase {
                id: 180,
                comment: "s == 1",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
                valid: true,
            },
            WycheproofCase {
                id: 181,
                comment: "s == 0",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "5abbf618a084f67138c418a896d61af3af1826040835b73e7619846b495eba6f7eeaa2e9cc61c85f6100fedc25c16743",
        y: "b065a427bc503139529e4faa63dda553aed2696fd02c2b6ceb2d941d2c4363cf9ac7a6759d50e8b9d07fe286f17cef5c",
        cases: &[
            WycheproofCase {
                id: 182,
                comment: "edge case modular inverse",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326427f8227a67d9422557647d27945a90ae1d2ec2931f90113cd5b407099e3d8f5a889d62069e64c0e1c4efe29690b0992",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3942027bc7f33c10b159293f2abd0af935642a546ea20de9d85c36a0f4ed40cfada782a297bb2046d633fa53e26adc52",
        y: "30656a4f1804feca511d41372483af36387f658c44fdc5e7f02487ab70e1bf9d185918d7820fee0ea57a4fe006abbe70",
        cases: &[
            WycheproofCase {
                id: 183,
                comment: "edge case modular inverse",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326369cf68bb2919c11d0f82315e1ee68a7ee8c17858bd334bf84536b2b74756a77e4eee10ecc5a6416a8263b5429afcba4",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "f896353cc3a8afdd543ec3aef062ca97bc32ed1724ea38b940b8c0ea0e23b34187afbe70daf8dbaa5b511557e5d2bdda",
        y: "c4bd265da67ceeafca636f6f4c0472f22a9d02e2289184f73bbb700ae8fc921eff4920f290bfcb49fbb232cc13a21028",
        cases: &[
            WycheproofCase {
                id: 197,
                comment: "point at infinity during verify",
                msg: "313233343030",
                sig: "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b955555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "370d9e2e31c712c8028092f802319d7fdf5b3319a8518d08bed3891508c7060cfe2236e18fa14fe077093ceae633e543",
        y: "0fd79aacf9d16ecc19b12d60fba4998dfc682702ec7c8bdd4a590035773b8c9c570ac7dcd414e03252f7a0e6f53b5863",
        cases: &[
            WycheproofCase {
                id: 198,
                comment: "edge case for signature malleability",
                msg: "313233343030",
                sig: "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b97fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b9",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "941e6cfa356e572dcccaeb594b06955d99dc4bf07958fc98ffa17de11c7521bf2c7aa8ff260952fcb7aac078ede67b47",
        y: "90a78a0296b041a10f003df1998da4cc4a1614ebcbf5d239431f33d90d3023edc1802e8db6dabcbae67cc314da2aabab",
        cases: &[
            WycheproofCase {
                id: 199,
                comment: "edge case for signature malleability",
                msg: "313233343030",
                sig: "7fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294b97fffffffffffffffffffffffffffffffffffffffffffffffe3b1a6c0fa1b96efac0d06d9245853bd76760cb5666294ba",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3ecfd58a3ce583866e0471d16eb3c10a411ec3b8671f3a04769b1ed8464a71cf1c76d8d9b7e3670bbe712d6f554a9383",
        y: "d980d8bedf57470d6b45cc1ad0c6426dc70a0e4be901106a36663bfcab04fcb86008777b92445120d5e3641d97396362",
        cases: &[
            WycheproofCase {
                id: 200,
                comment: "u1 == 1",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326f9b127f0d81ebcd17b7ba0ea131c660d340b05ce557c82160e0f793de07d38179023942871acb7002dfafdfffc8deace",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "4150ccd0fa45aa2ef6b5042ddbb1b87c5ffd1115a8fe5995641948acda82a7b190762d84352cd74d1ca01e79f68f9cb4",
        y: "eb11be9d494c181c156e23e77e532bdf0a20c3cc74ba8c29b1f3eb2bd99129ee0d70ff0d593f0d7a6d6887e7c55930d2",
        cases: &[
            WycheproofCase {
                id: 201,
                comment: "u1 == n - 1",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326064ed80f27e1432e84845f15ece399f2cbf4fa31aa837de9b953d44413b9f5c7c7f67989d703f07abef11b6ad0373ea5",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "e78fe2c11beac7090ee0af7fed469a8ccebd3cccc4ee9fccc8ef3fc0455b69aaa082dc13e1d84f34026cb6f0af9e992f",
        y: "f34ebba71bf3a4050bf28e4084b5c5f5d4098ec46f10a31b02fb4bf20cc9362f6f02a66e802f817507535fac3ec0b099",
        cases: &[
            WycheproofCase {
                id: 202,
                comment: "u2 == 1",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec632655555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "ee24ab8a34d05af684939357f32759cc5a14f3c717529a20aea8e0c5965d8a41e68925f688471994b72021ba51b28c09",
        y: "0a55693c92ad0cbae9edcf515e2b4c060b888d82c81e4a3b6a173b62ed04a46fa95db1a2f3949980fba2e371263c4fa9",
        cases: &[
            WycheproofCase {
                id: 203,
                comment: "u2 == n - 1",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa84ecde56a2cf73ea3abc092185cb1a51f34810f1ddd8c64d",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3d2e916055c92e1b36133f5937b37c1b0102834eb77008a3ba9c3da446e9065971d68ba913091851e10cff5b4cd875c1",
        y: "39aa7aadfc2caf7107b17ae1aea8b299d61bf15aca0cb3fd6f1ffde8192bfe58f0822bbbc1f55bddf6b4fe9c8f2b0eac",
        cases: &[
            WycheproofCase {
                id: 204,
                comment: "edge case for u1",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd533b0d50480a3ef07e7e8af8b1097759bc03ac9a1c7ed6075a052869f57f12b285613162d08ee7aab9fe54aaa984a39a",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "ae596697427aa250156c05ac4338e48980a7f093ea1f1fe67098b43f6539c1b20ae74338f9bf270d33663c50abe8fd00",
        y: "1ca6a52732db74ab15d2f249a3d839080f898367dfd64992cdce2708deaad523a2a236b43400424241c91a35b530fa50",
        cases: &[
            WycheproofCase {
                id: 205,
                comment: "edge case for u1",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffdd49a253986bbaa8ce9c3d3808313d39c3b950a478372edc009bc0566b73be7b05dad0737e16960257cc16db6ec6c620f",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "f877bd6e2a9273e322a3298ea3add13d1104b32172283669ca6688f0cb591524a7f15dd41496681eda98939aae729fed",
        y: "e85ca37c81ef19e3dc9ab16908a3720d86875a51a6a6d932e37492a6ec7a344eabc482377f14891fbd1da7faeffa1178",
        cases: &[
            WycheproofCase {
                id: 216,
                comment: "edge case for u2",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd7fffffffffffffffffffffffffffffffffffffffffffffffed2119d5fc12649fc808af3b6d9037d3a44eb32399970dd0",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "14249bbcfeeceab06c75654d361c0df8d56b320ea3bc1d4627ec0a2f4b8fa3577445694664f569a91f480741381e494a",
        y: "28479f2186d715a56788f67073056aa0cb0b6a7f7893e77b9a6976ef6663d80226896d7f43bb502e1b4d49558a27dd8b",
        cases: &[
            WycheproofCase {
                id: 217,
                comment: "edge case for u2",
                msg: "313233343030",
                sig: "7ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffd79b95c013b0472de04d8faeec3b779c39fe729ea84fb554cd091c7178c2f054eabbc62c3e1cfbac2c2e69d7aa45d9072",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "e585a067d6dff37ae7f17f81583119b61291597345f107acffe237a08f4886d4fdf94fe63182e6143c99be25a7b7d86b",
        y: "572c1e06dd2c7b94b873f0578fcb2b99d60e246e51245d0804edd44b32f0f000c8f8f88f1d4a65fea51dbbb4ab1e2823",
        cases: &[
            WycheproofCase {
                id: 228,
                comment: "point duplication during verification",
                msg: "313233343030",
                sig: "b37699e0d518a4d370dbdaaaea3788850fa03f8186d1f78fdfbae6540aa670b31c8ada0fff3e737bd69520560fe0ce6064adb4d51a93f96bed4665de2d4e1169cc95819ec6e9333edfd5c07ca134ceef7c95957b719ae349fc439eaa49fbbe34",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "e585a067d6dff37ae7f17f81583119b61291597345f107acffe237a08f4886d4fdf94fe63182e6143c99be25a7b7d86b",
        y: "a8d3e1f922d3846b478c0fa87034d46629f1db91aedba2f7fb122bb4cd0f0ffe3707076fe2b59a015ae2444c54e1d7dc",
        cases: &[
            WycheproofCase {
                id: 229,
                comment: "duplication bug",
                msg: "313233343030",
                sig: "b37699e0d518a4d370dbdaaaea3788850fa03f8186d1f78fdfbae6540aa670b31c8ada0fff3e737bd69520560fe0ce6064adb4d51a93f96bed4665de2d4e1169cc95819ec6e9333edfd5c07ca134ceef7c95957b719ae349fc439eaa49fbbe34",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "b4d78cccbced8065c0ebdc330b4670ec99309273e442b9be341196c1043e4441fc57b914085595bfc755c64fc409f0ba",
        y: "01fee31cbbbaed5c1323f09c87df9b0712c12e99733fa23ef91b4e6ca666b09dd7540ebf1068a15155bc069e3d595c8c",
        cases: &[
            WycheproofCase {
                id: 230,
                comment: "point with x-coordinate 0",
                msg: "313233343030",
                sig: "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000155555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "6e3c68be53aade81ef89e096d841e2845a23331e7ec8a6a839d58d07fa016c0973ed75de4f99177bfdc74db566e9d15a",
        y: "4972ea08e577ce1f61c13a6ca1bad1deef2982ee01a2826f002b769f2c46098d3baff068a405d09ca3840d2fafe4e46e",
        cases: &[
            WycheproofCase {
                id: 231,
                comment: "point with x-coordinate 0",
                msg: "313233343030",
                sig: "010000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000033333333333333333333333333333333333333333333333327e0a919fda4a2c644d202bd41bcee4bc8fc05155c276eb0",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "b101cdb3eba20e112adbb4bbd2cb479a69e590a44ea902631832abfab8af2c3041b3df7f1665b2c6eb533f546217100a",
        y: "1a61aa9951578ad4f00ae17339a8a6f1359bbd0ac355678ed4df21338f08763c1d3702ec132b634c7bcc0118efb1d0dd",
        cases: &[
            WycheproofCase {
                id: 232,
                comment: "comparison with point at infinity",
                msg: "313233343030",
                sig: "55555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec632633333333333333333333333333333333333333333333333327e0a919fda4a2c644d202bd41bcee4bc8fc05155c276eb0",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "6761044a040a4979db269b4a377e42f11b4be0ce24611f677674dcf770f5887ca4db565303283809e6d65f7fc6bc2736",
        y: "05c7daa403fca53549f75ff3372909642d02b7fdcac1e68242814d6e925ab01a80836cfbb35581960079e2fb44c0d186",
        cases: &[
            WycheproofCase {
                id: 233,
                comment: "extreme value for k and edgecase s",
                msg: "313233343030",
                sig: "08d999057ba3d2d969260045c55b97f089025959a6f434d651d207d19fb96e9e4fe0e86ebe0e64f85b96a9c75295df6155555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "6922c591502f01046fee5617bf16496f58398822e69afa8335308f36c09a8ed437209fefcffbbdf0a4876b35a3c7ab26",
        y: "55854db825b94b3f27e5f892d3bbb6c7240ec922894dd3598e91fcc6134a2b8fd154e1790466906206f0f623416e63a1",
        cases: &[
            WycheproofCase {
                id: 234,
                comment: "extreme value for k and s^-1",
                msg: "313233343030",
                sig: "08d999057ba3d2d969260045c55b97f089025959a6f434d651d207d19fb96e9e4fe0e86ebe0e64f85b96a9c75295df612492492492492492492492492492492492492492492492491c7be680477598d6c3716fabc13dcec86afd2833d41c2a7e",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "892dac0e700fc29d1802d9a449a6f56b2172cb1b7d881013cd3b31c0edb052f2d340c8995a4477bcb9225fec15667233",
        y: "cc6c34ae17445444516fd8fd22ee83f79eb0771ebff6677ac5d4e089f87a1c72df957acb24492adcd7c3816b8e0c75b1",
        cases: &[
            WycheproofCase {
                id: 235,
                comment: "extreme value for k and s^-1",
                msg: "313233343030",
                sig: "08d999057ba3d2d969260045c55b97f089025959a6f434d651d207d19fb96e9e4fe0e86ebe0e64f85b96a9c75295df616666666666666666666666666666666666666666666666664fc15233fb49458c89a4057a8379dc9791f80a2ab84edd61",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "0fd1aab89f47b565b8160dfcc433b6408adeb1473c036b26b7ddec714fb4d0e7dd756c88469e86e218813ead8e8e7676",
        y: "f1cc955c4139e0071c0079ec1d77164e0569bdf453837e8b33c98535a0e7c9c61ef24762067bb46b6116ea7909a69b23",
        cases: &[
            WycheproofCase {
                id: 238,
                comment: "extreme value for k",
                msg: "313233343030",
                sig: "08d999057ba3d2d969260045c55b97f089025959a6f434d651d207d19fb96e9e4fe0e86ebe0e64f85b96a9c75295df610eb10e5ab95f2f26a40700b1300fb8c3e754d5c453d9384ecce1daa38135a48a0a96c24efc2a76d00bde1d7aeedf7f6a",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "34d74ec088bab6c6323968d1f468993812f690d6edca5b97604d718e12b8cdfdd96d42e57d33afe312f0ee3c3d0a13f7",
        y: "86f4922bb2c13bdf7752a3ecb69393e997bd65461c46867ebeef6296b23f2c56df63acfde648f3f5002dbc239ffd1582",
        cases: &[
            WycheproofCase {
                id: 239,
                comment: "extreme value for k and edgecase s",
                msg: "313233343030",
                sig: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab755555555555555555555555555555555555555555555555542766f2b5167b9f51d5e0490c2e58d28f9a40878eeec6326",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "fa92538cdc740368caf16480ff1304cebbbe59a46a7a84603726b9592d105be069df1c61b5974f27e7552f797de97cdb",
        y: "620e03a46da862e4b089bafbb80df8f055c8f47991b3a3ddb2b089aedb2f15841a6a5b5e14c1dc36b3c155c4f74d3409",
        cases: &[
            WycheproofCase {
                id: 244,
                comment: "extreme value for k",
                msg: "313233343030",
                sig: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab70eb10e5ab95f2f26a40700b1300fb8c3e754d5c453d9384ecce1daa38135a48a0a96c24efc2a76d00bde1d7aeedf7f6a",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
        y: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
        cases: &[
            WycheproofCase {
                id: 245,
                comment: "public key shares x-coordinate with generator",
                msg: "313233343030",
                sig: "f9b127f0d81ebcd17b7ba0ea131c660d340b05ce557c82160e0f793de07d38179023942871acb7002dfafdfffc8deace2492492492492492492492492492492492492492492492491c7be680477598d6c3716fabc13dcec86afd2833d41c2a7e",
                valid: false,
            },
            WycheproofCase {
                id: 246,
                comment: "public key shares x-coordinate with generator",
                msg: "313233343030",
                sig: "064ed80f27e1432e84845f15ece399f2cbf4fa31aa837de9b953d44413b9f5c7c7f67989d703f07abef11b6ad0373ea52492492492492492492492492492492492492492492492491c7be680477598d6c3716fabc13dcec86afd2833d41c2a7e",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "016d2db67561bc126ad6c344d6eeb2713a9e2892c649af0f015c6b7617f160c8a3b3a88add669d7155025073c5ac5b4f",
        y: "43bf2ed0088af08645c80aa0a24a567a94ba2d794e9689d3ad4b185bc5d2dd008333e2dd2ebb5069a9b32251a3cac71e",
        cases: &[
            WycheproofCase {
                id: 271,
                comment: "r = 2, x = 2 is valid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3354c45736316411d883a2b6fd4db06eba3f265a91b785483a7ae20762fa3c4c079d07ade93074c25bebe755ba359907",
        y: "acba758be8e3c4e0c2e7b81d31296dc4bb0ce13d3eeac936b016260912c6dc0e98c95b2455bf9f9633d80c5430054663",
        cases: &[
            WycheproofCase {
                id: 272,
                comment: "r = 3, x = 2 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "016d2db67561bc126ad6c344d6eeb2713a9e2892c649af0f015c6b7617f160c8a3b3a88add669d7155025073c5ac5b4f",
        y: "43bf2ed0088af08645c80aa0a24a567a94ba2d794e9689d3ad4b185bc5d2dd008333e2dd2ebb5069a9b32251a3cac71e",
        cases: &[
            WycheproofCase {
                id: 273,
                comment: "r = 2 + n, x = 2 is invalid; r was not reduced mod n",
                msg: "68656c6c6f2c20776f726c64",
                sig: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52975ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "1ffc8be6cf440e2649263c7b0c535b5828effcd7403d1e3c0460b5d06e179eb09f4672c299ef0839719f01e321252213",
        y: "6df29eae630caabbfd328c538de8989e651a6192ba52a7117dccb23d822ccc3e1875a39d8c9621676fc67c952ac6e304",
        cases: &[
            WycheproofCase {
                id: 274,
                comment: "r = n - 2, x = n - 1 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52971ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "01b54a697305092bac2939fb906d7471b411c4eba8654169166a5da3810e1fc96795df921f7abbf519be4a027435176c",
        y: "a19012a3518773d508106d4153adee43c3c384fa62ce36a4addea08f593ec9c76b09a6b9c69d29bd7d47eb48e167dd2f",
        cases: &[
            WycheproofCase {
                id: 275,
                comment: "r = 2, x = n + 2 is the smallest possible x with a reduction",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: true,
            },
        ],
    },
    WycheproofGroup {
        x: "3c8ea2db06ef48ecd59f8c0e1accb1d0c40b9f5ff4e5af3d326c9c8cb74bc941b8fa489468a607bb04b9817ce039d609",
        y: "9629deac1964857b6d7268fb3ff50330a6dafc2510f557053bf42f11c61cf85ececc95cfa754725a05f5a8184920056a",
        cases: &[
            WycheproofCase {
                id: 276,
                comment: "r = 3, x = n + 2 is invalid",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "4e5e4f1a6e97059a6cf2f4e8129e5c7c64cb84f9994a41ff5bf30b29c1bf5ba6898627c91a23c73e05cd1a43c8f908c0",
        y: "06a0aed7f1e63a728f87dbd5360a67571a076ab0b4cde81b10d499959814ddb3a8c7854b0bbfa87cc272f90bca2a2254",
        cases: &[
            WycheproofCase {
                id: 277,
                comment: "r = p - n + 2, x = 2 is invalid; r is too large to compare r + n with x",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000389cb27e0bc8d21fa7e5f24cb74f58851313e696333ad68effffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "a7d0faaa124302cddcc1f46addca5a4cac48e02387ed0c51c46641a58999f16278255343522467f104bb296670458f81",
        y: "7896fa77fb2eb80058b4d86b94a633bc82184843c9b163155e3071c4e1c876f6de2c91444393b22019e4f83a8d34b0d2",
        cases: &[
            WycheproofCase {
                id: 278,
                comment: "r = 2^384 - n + 2, x = 2 is invalid; r + n is too large to compare r + n with x, and overflows 2^384 bits",
                msg: "68656c6c6f2c20776f726c64",
                sig: "000000000000000000000000000000000000000000000000389cb27e0bc8d220a7e5f24db74f58851313e695333ad68fffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52970",
                valid: false,
            },
        ],
    },
    WycheproofGroup {
        x: "0a2fc2edd21336babc59da04aa566dc9b6b068162f7970e311136883b61be8f894da03cc8e93a64803d4f4f83a19c1b9",
        y: "73076220bf4d40aa9a41cacbafbd32d1f0bd183c327153cd6601bfa81d5e2ec21c0ecc517e004dd3fbedeca7f975a9ed",
        cases: &[
            WycheproofCase {
                id: 279,
                comment: "s = 2^128",
                msg: "68656c6c6f2c20776f726c64",
                sig: "4fd5dd99138e6f1002d2d23591b2f94071a7f5ad49ddb970dc859275bfe51f193470d443e793196901e88bbe749614d7000000000000000000000000000000000000000000000000000000000000000100000000000000000000000000000000",
                valid: true,
            },
            WycheproofCase {
                id: 280,
                comment: "s = n - 2^128",
                msg: "68656c6c6f2c20776f726c64",
                sig: "4fd5dd99138e6f1002d2d23591b2f94071a7f5ad49ddb970dc859275bfe51f193470d443e793196901e88bbe749614d7ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372dde581a0db248b0a77aecec196accc52973",
                valid: true,
            },
        ],
    },
];
