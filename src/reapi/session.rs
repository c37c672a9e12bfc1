//! A connection to a REAPI engine: the gRPC channel (plain or TLS), the bearer token
//! every call carries, the instance name, and what the engine said it can do
//! (`Capabilities.GetCapabilities`, asked once per connection).

use std::future::Future;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint as Dial};
use tonic::{Request, Status};

use super::proto::build::bazel::remote::execution::v2::{
    capabilities_client::CapabilitiesClient, digest_function, GetCapabilitiesRequest,
    ServerCapabilities,
};
use super::{Endpoint, Error, Limits};

/// The largest batch swarmcc sends or asks for when the engine names no limit: gRPC's
/// usual 4 MiB message limit.
const DEFAULT_MAX_BATCH: usize = 4 << 20;
/// The largest message swarmcc accepts from an engine (a batch read of outputs).
pub(super) const MAX_MESSAGE: usize = 64 << 20;

/// What the engine offers, in the terms swarmcc uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Requests (batch uploads and reads) stay at or below this many bytes; larger
    /// blobs go through ByteStream.
    pub max_batch: usize,
    /// The engine speaks REAPI 2.1 or later (`Command.output_paths`).
    pub output_paths: bool,
    /// The engine runs actions; without, it can only serve its action cache.
    pub exec: bool,
}

/// One connection to an engine.
pub(super) struct Session {
    pub channel: Channel,
    pub instance: String,
    auth: Option<MetadataValue<Ascii>>,
    pub io: Duration,
    pub caps: Caps,
}

impl Session {
    /// Connects to `ep` and asks for its capabilities, refusing an engine that cannot
    /// run actions or does not use sha256.
    pub async fn open(ep: &Endpoint, limits: &Limits) -> Result<Session, Error> {
        let scheme = if ep.tls { "https" } else { "http" };
        let host = if ep.host.contains(':') {
            format!("[{}]", ep.host)
        } else {
            ep.host.clone()
        };
        let uri = format!("{scheme}://{host}:{}", ep.port);
        let mut dial = Dial::from_shared(uri.clone())
            .map_err(|e| Error::new(format!("bad engine address {uri}: {e}")))?
            .connect_timeout(limits.connect)
            .tcp_nodelay(true);
        if ep.tls {
            let mut tls = ClientTlsConfig::new().domain_name(ep.host.clone());
            tls = match &ep.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_native_roots().with_webpki_roots(),
            };
            dial = dial
                .tls_config(tls)
                .map_err(|e| Error::new(format!("TLS set-up for {uri}: {}", chain(&e))))?;
        }
        let channel = within(limits.connect, "connect", async {
            dial.connect()
                .await
                .map_err(|e| Error::new(format!("cannot connect to {uri}: {}", chain(&e))))
        })
        .await?;
        let auth = ep.token.as_deref().map(bearer).transpose()?;
        let mut session = Session {
            channel,
            instance: ep.instance.clone(),
            auth,
            io: limits.io,
            caps: Caps {
                max_batch: DEFAULT_MAX_BATCH,
                output_paths: false,
                exec: false,
            },
        };
        let mut client = CapabilitiesClient::new(session.channel.clone());
        let request = session.request(GetCapabilitiesRequest {
            instance_name: session.instance.clone(),
        });
        let caps = session
            .call("GetCapabilities", client.get_capabilities(request))
            .await?;
        session.caps = judge(&caps)?;
        log::debug!(
            "reapi {uri} instance \"{}\": max batch {} bytes, execution {}, REAPI {}",
            session.instance,
            session.caps.max_batch,
            if session.caps.exec { "on" } else { "off" },
            if session.caps.output_paths {
                "2.1+"
            } else {
                "2.0"
            }
        );
        Ok(session)
    }

    /// A request carrying the bearer token, if any.
    pub fn request<T>(&self, message: T) -> Request<T> {
        authorized(message, self.auth.as_ref())
    }

    /// Awaits one unary call within the I/O timeout, naming it in the error.
    pub async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Error> {
        within(self.io, what, async {
            call.await
                .map(tonic::Response::into_inner)
                .map_err(|s| status_error(what, &s))
        })
        .await
    }
}

/// The `authorization` value for a bearer token (as read from its file, trimmed).
fn bearer(token: &str) -> Result<MetadataValue<Ascii>, Error> {
    format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| Error::new("the bearer token is not printable ASCII on one line"))
}

fn authorized<T>(message: T, auth: Option<&MetadataValue<Ascii>>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(auth) = auth {
        request.metadata_mut().insert("authorization", auth.clone());
    }
    request
}

/// What swarmcc makes of the engine's capabilities: sha256 is required; execution is
/// not (a cache-only engine can still serve results others stored).
pub fn judge(caps: &ServerCapabilities) -> Result<Caps, Error> {
    let sha256 = digest_function::Value::Sha256 as i32;
    let exec = caps
        .execution_capabilities
        .as_ref()
        .filter(|e| e.exec_enabled);
    let exec_sha256 = exec.is_none_or(|e| {
        e.digest_function == sha256
            || e.digest_functions.contains(&sha256)
            || (e.digest_function == 0 && e.digest_functions.is_empty())
    });
    let cache = caps.cache_capabilities.clone().unwrap_or_default();
    let cas_sha256 = cache.digest_functions.is_empty() || cache.digest_functions.contains(&sha256);
    if !exec_sha256 || !cas_sha256 {
        return Err(Error::new(
            "the engine does not offer the sha256 digest function",
        ));
    }
    let max_batch = match cache.max_batch_total_size_bytes {
        n if n > 0 => n as usize,
        _ => DEFAULT_MAX_BATCH,
    };
    let output_paths = caps
        .high_api_version
        .as_ref()
        .is_some_and(|v| v.major > 2 || (v.major == 2 && v.minor >= 1));
    Ok(Caps {
        max_batch: max_batch.min(MAX_MESSAGE),
        output_paths,
        exec: exec.is_some(),
    })
}

/// Runs `work` within `limit`, or fails naming `what` timed out.
pub(super) async fn within<T>(
    limit: Duration,
    what: &str,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(format!(
            "{what}: no answer in {}s",
            limit.as_secs_f64()
        ))),
    }
}

/// A gRPC status as an error of the call `what`.
pub(super) fn status_error(what: &str, status: &Status) -> Error {
    let message = status.message();
    if message.is_empty() {
        Error::new(format!("{what}: {:?}", status.code()))
    } else {
        Error::new(format!("{what}: {:?}: {message}", status.code()))
    }
}

/// An error with its causes, which tonic's transport errors keep out of `Display`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reapi::proto::build::bazel::remote::execution::v2::{
        CacheCapabilities, ExecutionCapabilities,
    };
    use crate::reapi::proto::build::bazel::semver::SemVer;

    fn caps(exec: bool, max: i64, minor: i32) -> ServerCapabilities {
        ServerCapabilities {
            cache_capabilities: Some(CacheCapabilities {
                digest_functions: vec![digest_function::Value::Sha256 as i32],
                max_batch_total_size_bytes: max,
                ..CacheCapabilities::default()
            }),
            execution_capabilities: Some(ExecutionCapabilities {
                digest_function: digest_function::Value::Sha256 as i32,
                exec_enabled: exec,
                ..ExecutionCapabilities::default()
            }),
            high_api_version: Some(SemVer {
                major: 2,
                minor,
                ..SemVer::default()
            }),
            ..ServerCapabilities::default()
        }
    }

    #[test]
    fn requests_carry_the_bearer_token() {
        let auth = bearer("s3cret\n").unwrap();
        let request = authorized((), Some(&auth));
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        assert!(authorized((), None)
            .metadata()
            .get("authorization")
            .is_none());
        let err = bearer("two\nlines").unwrap_err().to_string();
        assert!(err.contains("printable ASCII"), "{err}");
    }

    #[test]
    fn capabilities_are_judged() {
        assert_eq!(
            judge(&caps(true, 1000, 3)).unwrap(),
            Caps {
                max_batch: 1000,
                output_paths: true,
                exec: true,
            }
        );
        let old = judge(&caps(true, 0, 0)).unwrap();
        assert_eq!(old.max_batch, DEFAULT_MAX_BATCH);
        assert!(!old.output_paths);
        assert!(
            !judge(&caps(false, 0, 3)).unwrap().exec,
            "exec_enabled false"
        );
        let mut md5 = caps(true, 0, 3);
        md5.cache_capabilities.as_mut().unwrap().digest_functions =
            vec![digest_function::Value::Md5 as i32];
        assert!(judge(&md5).unwrap_err().to_string().contains("sha256"));
        let cas_only = ServerCapabilities {
            execution_capabilities: None,
            ..caps(true, 0, 3)
        };
        assert!(!judge(&cas_only).unwrap().exec);
    }
}
