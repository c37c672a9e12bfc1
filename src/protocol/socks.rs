//! The client's half of a SOCKSv5 `CONNECT` (RFC 1928), as Gentoo's patched distcc
//! speaks it to the proxy Portage starts for `network-sandbox`: one method offered (no
//! authentication), then a `CONNECT` naming the host as a domain name, so that the
//! proxy resolves it outside the sandbox. Pure encoding and decoding; `transport`
//! carries the bytes.
//!
//! ```text
//! client → proxy   05 01 00                      version 5, one method: none
//! proxy → client   05 00                         method chosen (FF: none acceptable)
//! client → proxy   05 01 00 03 <len> <host> <port, 2 bytes big-endian>
//! proxy → client   05 <rep> 00 <atyp> <bound address> <port>   rep 00: connected
//! ```

use super::Error;

const VERSION: u8 = 0x05;
const NO_AUTHENTICATION: u8 = 0x00;
const CONNECT: u8 = 0x01;
const ATYP_IPV4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_IPV6: u8 = 0x04;

/// Appends the greeting: SOCKSv5, offering only "no authentication".
pub fn encode_greeting(out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, 1, NO_AUTHENTICATION]);
}

/// Appends a `CONNECT` request for `host:port`, the host sent as a domain name (also
/// when it is an address literal, as Gentoo's distcc sends it).
pub fn encode_connect(host: &str, port: u16, out: &mut Vec<u8>) -> Result<(), Error> {
    let len = u8::try_from(host.len())
        .map_err(|_| Error::Encode("host name too long for SOCKSv5 (over 255 bytes)"))?;
    if len == 0 {
        return Err(Error::Encode("empty host name"));
    }
    out.extend_from_slice(&[VERSION, CONNECT, 0, ATYP_DOMAIN, len]);
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    Ok(())
}

/// Decodes the proxy's method choice: `true` when it accepted "no authentication".
#[derive(Debug, Default)]
pub struct MethodDecoder;

impl MethodDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(bool, usize)>, Error> {
        let Some(&[version, method]) = buf.get(..2) else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(Error::Socks(format!(
                "not a SOCKSv5 proxy (version byte {version:#04x} in its method reply)"
            )));
        }
        Ok(Some((method == NO_AUTHENTICATION, 2)))
    }
}

/// Decodes the proxy's answer to `CONNECT`: the reply code (0 means connected; see
/// [`reply_meaning`]), once the whole reply, bound address included, is there.
#[derive(Debug, Default)]
pub struct ConnectDecoder;

impl ConnectDecoder {
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(u8, usize)>, Error> {
        let Some(&[version, reply, reserved, atyp]) = buf.get(..4) else {
            return Ok(None);
        };
        if version != VERSION || reserved != 0 {
            return Err(Error::Socks(format!(
                "invalid SOCKSv5 reply (version {version:#04x}, reserved {reserved:#04x})"
            )));
        }
        let address = match atyp {
            ATYP_IPV4 => 4,
            ATYP_IPV6 => 16,
            ATYP_DOMAIN => match buf.get(4) {
                Some(&n) => 1 + usize::from(n),
                None => return Ok(None),
            },
            other => {
                return Err(Error::Socks(format!(
                    "invalid SOCKSv5 reply (address type {other:#04x})"
                )))
            }
        };
        let len = 4 + address + 2;
        Ok((buf.len() >= len).then_some((reply, len)))
    }
}

/// What a `CONNECT` reply code means (RFC 1928, section 6).
pub fn reply_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "succeeded",
        0x01 => "general SOCKS server failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned reply code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_connect_are_what_gentoos_distcc_sends() {
        let mut out = Vec::new();
        encode_greeting(&mut out);
        encode_connect("build1", 3632, &mut out).unwrap();
        assert_eq!(
            out,
            [
                &[5u8, 1, 0][..],
                &[5, 1, 0, 3, 6],
                b"build1",
                &3632u16.to_be_bytes()
            ]
            .concat()
        );
        let long = "h".repeat(256);
        let mut out = Vec::new();
        assert!(encode_connect(&long, 1, &mut out).is_err());
        assert!(encode_connect("", 1, &mut out).is_err());
        assert!(out.is_empty(), "nothing appended on failure");
    }

    #[test]
    fn method_reply() {
        assert_eq!(MethodDecoder.decode(&[5]).unwrap(), None);
        assert_eq!(MethodDecoder.decode(&[5, 0, 9]).unwrap(), Some((true, 2)));
        assert_eq!(MethodDecoder.decode(&[5, 0xff]).unwrap(), Some((false, 2)));
        assert!(MethodDecoder.decode(&[4, 0]).is_err());
    }

    #[test]
    fn connect_reply_waits_for_the_whole_bound_address() {
        let v4 = [5, 0, 0, 1, 127, 0, 0, 1, 0x0e, 0x30];
        for n in 0..v4.len() {
            assert_eq!(ConnectDecoder.decode(&v4[..n]).unwrap(), None, "{n} bytes");
        }
        assert_eq!(ConnectDecoder.decode(&v4).unwrap(), Some((0, 10)));
        let mut v6 = vec![5, 5, 0, 4];
        v6.extend_from_slice(&[0; 18]);
        assert_eq!(ConnectDecoder.decode(&v6).unwrap(), Some((5, 22)));
        let name = [&[5u8, 4, 0, 3, 3][..], b"abc", &[0, 1]].concat();
        assert_eq!(ConnectDecoder.decode(&name[..7]).unwrap(), None);
        assert_eq!(ConnectDecoder.decode(&name).unwrap(), Some((4, 10)));
        assert!(ConnectDecoder.decode(&[5, 0, 1, 1]).is_err());
        assert!(ConnectDecoder.decode(&[5, 0, 0, 9]).is_err());
        assert_eq!(reply_meaning(5), "connection refused");
    }
}
