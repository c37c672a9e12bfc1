//! The action cache (`GetActionResult`) and the execution service (`Execute`, and
//! `WaitExecution` when the stream of operations breaks before the end).

use std::time::Duration;

use prost::Message;
use tokio::time::Instant;
use tonic::Code;

use super::digest;
use super::proto::build::bazel::remote::execution::v2::{
    action_cache_client::ActionCacheClient, execution_client::ExecutionClient, ActionResult,
    Digest, ExecuteRequest, ExecuteResponse, GetActionResultRequest, WaitExecutionRequest,
};
use super::proto::google::longrunning::{operation, Operation};
use super::session::{status_error, Session, MAX_MESSAGE};
use super::Error;

/// How often a broken stream of operations is resumed with `WaitExecution`.
const RESUMES: u32 = 3;

/// The engine's cached result for `action`, if it has one.
pub(super) async fn cached(
    s: &Session,
    action: &Digest,
    output: &str,
) -> Result<Option<ActionResult>, Error> {
    let request = s.request(GetActionResultRequest {
        instance_name: s.instance.clone(),
        action_digest: Some(action.clone()),
        inline_stdout: true,
        inline_stderr: true,
        inline_output_files: vec![output.to_string()],
        ..GetActionResultRequest::default()
    });
    let mut client =
        ActionCacheClient::new(s.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
    match client.get_action_result(request).await {
        Ok(r) => Ok(Some(r.into_inner())),
        Err(st) if st.code() == Code::NotFound => Ok(None),
        Err(st) => Err(status_error("GetActionResult", &st)),
    }
}

/// What an execution came to.
#[derive(Debug)]
pub(super) struct Executed {
    pub result: ActionResult,
    /// The engine answered from its own cache.
    pub cached: bool,
    pub operation: String,
}

/// Executes `action`, waiting at most `limit` for the result.
pub(super) async fn execute(
    s: &Session,
    action: &Digest,
    skip_cache_lookup: bool,
    limit: Duration,
) -> Result<Executed, Error> {
    let deadline = Instant::now() + limit;
    let mut client = ExecutionClient::new(s.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
    let request = s.request(ExecuteRequest {
        instance_name: s.instance.clone(),
        skip_cache_lookup,
        action_digest: Some(action.clone()),
        ..ExecuteRequest::default()
    });
    let mut stream = s.call("Execute", client.execute(request)).await?;
    let mut name = String::new();
    let mut resumes = 0;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        let broke = match next {
            Err(_) => {
                return Err(Error::new(format!(
                    "Execute {}: no result in {}s",
                    digest::show(action),
                    limit.as_secs()
                )))
            }
            Ok(Ok(Some(op))) => {
                if !op.name.is_empty() && op.name != name {
                    log::debug!("reapi: operation {}", op.name);
                    name = op.name.clone();
                }
                if op.done {
                    return finish(op, name);
                }
                continue;
            }
            Ok(Ok(None)) => "the stream ended before the operation was done".to_string(),
            Ok(Err(st)) => status_error("Execute", &st).to_string(),
        };
        if name.is_empty() || resumes == RESUMES {
            return Err(Error::new(format!("Execute: {broke}")));
        }
        resumes += 1;
        log::debug!("reapi: {broke}; WaitExecution {name}");
        let request = s.request(WaitExecutionRequest { name: name.clone() });
        stream = s
            .call("WaitExecution", client.wait_execution(request))
            .await?;
    }
}

/// The result of a finished operation, or why there is none.
fn finish(op: Operation, name: String) -> Result<Executed, Error> {
    let response = match op.result {
        Some(operation::Result::Response(any)) => ExecuteResponse::decode(&any.value[..])
            .map_err(|e| Error::new(format!("operation {name}: bad ExecuteResponse: {e}")))?,
        Some(operation::Result::Error(st)) => {
            return Err(Error::new(format!(
                "operation {name} failed (code {}): {}",
                st.code, st.message
            )))
        }
        None => {
            return Err(Error::new(format!(
                "operation {name} is done without a result"
            )))
        }
    };
    if let Some(st) = response.status.as_ref().filter(|st| st.code != 0) {
        return Err(Error::new(format!(
            "operation {name} failed (code {}): {}",
            st.code, st.message
        )));
    }
    let result = response
        .result
        .ok_or_else(|| Error::new(format!("operation {name}: no ActionResult")))?;
    Ok(Executed {
        result,
        cached: response.cached_result,
        operation: name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reapi::proto::google::rpc::Status;

    fn done(result: operation::Result) -> Operation {
        Operation {
            name: "op1".into(),
            metadata: None,
            done: true,
            result: Some(result),
        }
    }

    fn response(r: ExecuteResponse) -> operation::Result {
        operation::Result::Response(prost_types::Any {
            type_url: "type.googleapis.com/build.bazel.remote.execution.v2.ExecuteResponse".into(),
            value: r.encode_to_vec(),
        })
    }

    #[test]
    fn finished_operations_are_read() {
        let ok = ExecuteResponse {
            result: Some(ActionResult {
                exit_code: 1,
                ..ActionResult::default()
            }),
            cached_result: true,
            ..ExecuteResponse::default()
        };
        let got = finish(done(response(ok)), "op1".into()).unwrap();
        assert_eq!(got.result.exit_code, 1);
        assert!(got.cached);
        let failed = ExecuteResponse {
            status: Some(Status {
                code: 9,
                message: "missing input".into(),
                details: vec![],
            }),
            ..ExecuteResponse::default()
        };
        let err = finish(done(response(failed)), "op1".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing input"), "{err}");
        let err = finish(
            done(operation::Result::Error(Status {
                code: 14,
                message: "worker lost".into(),
                details: vec![],
            })),
            "op1".into(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("worker lost") && err.contains("op1"), "{err}");
    }
}
