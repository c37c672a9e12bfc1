//! The content-addressable store: which blobs the engine lacks (`FindMissingBlobs`),
//! uploads (`BatchUpdateBlobs` for those that fit a batch, ByteStream `Write` for the
//! rest) and downloads (`BatchReadBlobs`, ByteStream `Read`), each checked against its
//! digest.

use std::collections::HashMap;

use super::action::Blob;
use super::digest;
use super::proto::build::bazel::remote::execution::v2::{
    batch_update_blobs_request,
    content_addressable_storage_client::ContentAddressableStorageClient, BatchReadBlobsRequest,
    BatchUpdateBlobsRequest, Digest, FindMissingBlobsRequest,
};
use super::proto::google::bytestream::{
    byte_stream_client::ByteStreamClient, ReadRequest, WriteRequest,
};
use super::session::{status_error, within, Session, MAX_MESSAGE};
use super::Error;

/// What a blob costs in a batch besides its bytes (its digest and framing), kept
/// generous so that a batch never exceeds the engine's limit.
const PER_BLOB: usize = 256;
/// ByteStream chunk size.
const CHUNK: usize = 1 << 20;

fn cas(s: &Session) -> ContentAddressableStorageClient<tonic::transport::Channel> {
    ContentAddressableStorageClient::new(s.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
}

fn fits_batch(s: &Session, size: usize) -> bool {
    size + PER_BLOB <= s.caps.max_batch
}

/// Uploads the blobs the engine does not have; returns how many that was.
pub(super) async fn upload_missing(s: &Session, blobs: &[Blob]) -> Result<usize, Error> {
    let request = s.request(FindMissingBlobsRequest {
        instance_name: s.instance.clone(),
        blob_digests: blobs.iter().map(|b| b.digest.clone()).collect(),
        ..FindMissingBlobsRequest::default()
    });
    let mut client = cas(s);
    let missing = s
        .call("FindMissingBlobs", client.find_missing_blobs(request))
        .await?
        .missing_blob_digests;
    let wanted: Vec<&Blob> = blobs
        .iter()
        .filter(|b| missing.contains(&b.digest))
        .collect();
    let (small, large): (Vec<&Blob>, Vec<&Blob>) =
        wanted.iter().partition(|b| fits_batch(s, b.data.len()));
    for batch in batches(s.caps.max_batch, small, |b| b.data.len()) {
        update_batch(s, &batch).await?;
    }
    for blob in &large {
        write_stream(s, blob).await?;
    }
    if !wanted.is_empty() {
        log::debug!(
            "reapi: uploaded {} of {} blobs ({} by ByteStream)",
            wanted.len(),
            blobs.len(),
            large.len()
        );
    }
    Ok(wanted.len())
}

/// `items` grouped so that each group's blobs (of `size` bytes each, plus the
/// per-blob overhead) stay within `limit` bytes.
fn batches<T>(limit: usize, items: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut used = 0;
    for item in items {
        let cost = size(&item) + PER_BLOB;
        if out.is_empty() || used + cost > limit {
            out.push(Vec::new());
            used = 0;
        }
        used += cost;
        out.last_mut().expect("a batch was just pushed").push(item);
    }
    out
}

async fn update_batch(s: &Session, batch: &[&Blob]) -> Result<(), Error> {
    let request = s.request(BatchUpdateBlobsRequest {
        instance_name: s.instance.clone(),
        requests: batch
            .iter()
            .map(|b| batch_update_blobs_request::Request {
                digest: Some(b.digest.clone()),
                data: b.data.clone(),
                ..Default::default()
            })
            .collect(),
        ..BatchUpdateBlobsRequest::default()
    });
    let mut client = cas(s);
    let answer = s
        .call("BatchUpdateBlobs", client.batch_update_blobs(request))
        .await?;
    for r in answer.responses {
        if let Some(st) = r.status.filter(|st| st.code != 0) {
            let which = r.digest.as_ref().map(digest::show).unwrap_or_default();
            return Err(Error::new(format!(
                "BatchUpdateBlobs: blob {which} refused (code {}): {}",
                st.code, st.message
            )));
        }
    }
    Ok(())
}

/// A fresh upload id for a ByteStream resource name (a random UUID, version 4).
fn upload_id() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::new(format!("no random upload id: {e}")))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// `INSTANCE/` (nothing for the empty instance), which ByteStream names start with.
fn prefix(s: &Session) -> String {
    if s.instance.is_empty() {
        String::new()
    } else {
        format!("{}/", s.instance)
    }
}

async fn write_stream(s: &Session, blob: &Blob) -> Result<(), Error> {
    let name = format!(
        "{}uploads/{}/blobs/{}",
        prefix(s),
        upload_id()?,
        digest::show(&blob.digest)
    );
    let total = blob.data.len();
    let mut chunks = Vec::new();
    let mut offset = 0;
    loop {
        let end = (offset + CHUNK).min(total);
        chunks.push(WriteRequest {
            resource_name: if offset == 0 {
                name.clone()
            } else {
                String::new()
            },
            write_offset: offset as i64,
            finish_write: end == total,
            data: blob.data[offset..end].to_vec(),
        });
        offset = end;
        if offset == total {
            break;
        }
    }
    let mut client = ByteStreamClient::new(s.channel.clone());
    let request = s.request(tokio_stream::iter(chunks));
    let answer = s.call("ByteStream.Write", client.write(request)).await?;
    // An engine that already holds the blob may stop the upload early and say so.
    if answer.committed_size != total as i64 {
        return Err(Error::new(format!(
            "ByteStream.Write of {}: {} bytes committed",
            digest::show(&blob.digest),
            answer.committed_size
        )));
    }
    log::debug!("reapi: wrote {} by ByteStream", digest::show(&blob.digest));
    Ok(())
}

/// Downloads `wanted` (duplicates allowed), each checked against its digest.
pub(super) async fn download(
    s: &Session,
    wanted: &[Digest],
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let mut got: HashMap<String, Vec<u8>> = HashMap::new();
    let mut small: Vec<&Digest> = Vec::new();
    for d in wanted {
        if got.contains_key(&d.hash) || small.iter().any(|x| x.hash == d.hash) {
            continue;
        }
        if d.size_bytes == 0 {
            digest::verify(d, &[]).map_err(Error::new)?;
            got.insert(d.hash.clone(), Vec::new());
        } else if fits_batch(s, d.size_bytes as usize) {
            small.push(d);
        } else {
            let data = read_stream(s, d).await?;
            got.insert(d.hash.clone(), data);
        }
    }
    let small: Vec<Digest> = small.into_iter().cloned().collect();
    for group in batches(s.caps.max_batch, small, |d| d.size_bytes as usize) {
        read_batch(s, group, &mut got).await?;
    }
    Ok(got)
}

async fn read_batch(
    s: &Session,
    digests: Vec<Digest>,
    got: &mut HashMap<String, Vec<u8>>,
) -> Result<(), Error> {
    let request = s.request(BatchReadBlobsRequest {
        instance_name: s.instance.clone(),
        digests: digests.clone(),
        ..BatchReadBlobsRequest::default()
    });
    let mut client = cas(s);
    let answer = s
        .call("BatchReadBlobs", client.batch_read_blobs(request))
        .await?;
    for r in answer.responses {
        let Some(d) = r.digest else { continue };
        if let Some(st) = r.status.filter(|st| st.code != 0) {
            return Err(Error::new(format!(
                "BatchReadBlobs: blob {} not read (code {}): {}",
                digest::show(&d),
                st.code,
                st.message
            )));
        }
        digest::verify(&d, &r.data).map_err(|e| Error::new(format!("BatchReadBlobs: {e}")))?;
        got.insert(d.hash.clone(), r.data);
    }
    if let Some(lost) = digests.iter().find(|d| !got.contains_key(&d.hash)) {
        return Err(Error::new(format!(
            "BatchReadBlobs: blob {} missing from the answer",
            digest::show(lost)
        )));
    }
    Ok(())
}

async fn read_stream(s: &Session, d: &Digest) -> Result<Vec<u8>, Error> {
    let request = s.request(ReadRequest {
        resource_name: format!("{}blobs/{}", prefix(s), digest::show(d)),
        read_offset: 0,
        read_limit: 0,
    });
    let mut client =
        ByteStreamClient::new(s.channel.clone()).max_decoding_message_size(MAX_MESSAGE);
    let what = "ByteStream.Read";
    let mut stream = s.call(what, client.read(request)).await?;
    let mut data = Vec::with_capacity(d.size_bytes.max(0) as usize);
    loop {
        let next = within(s.io, what, async {
            stream.message().await.map_err(|st| status_error(what, &st))
        })
        .await?;
        match next {
            Some(chunk) => data.extend_from_slice(&chunk.data),
            None => break,
        }
        if data.len() as i64 > d.size_bytes {
            break;
        }
    }
    digest::verify(d, &data).map_err(|e| Error::new(format!("{what}: {e}")))?;
    log::debug!("reapi: read {} by ByteStream", digest::show(d));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_within_the_limit() {
        let blob = |n: usize| Blob {
            digest: digest::of(&vec![0; n]),
            data: vec![0; n],
        };
        let blobs = [blob(100), blob(500), blob(300), blob(10)];
        let refs: Vec<&Blob> = blobs.iter().collect();
        let groups = batches(1200, refs, |b| b.data.len());
        let sizes: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| g.iter().map(|b| b.data.len()).collect())
            .collect();
        assert_eq!(sizes, vec![vec![100, 500], vec![300, 10]]);
        for g in &groups {
            assert!(g.iter().map(|b| b.data.len() + PER_BLOB).sum::<usize>() <= 1200);
        }
    }

    #[test]
    fn upload_ids_are_version_4_uuids() {
        let id = upload_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, upload_id().unwrap());
    }
}
