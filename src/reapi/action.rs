//! A compile as a REAPI Action: the `Command` (the compiler invocation on a file of the
//! input root, its output, a minimal environment), the input root `Directory` holding
//! the preprocessed source, and the `Action` naming both. Sans-IO: it makes messages
//! and blobs, and the caller uploads them.
//!
//! The action's digest is the cache key an engine's action cache looks results up by:
//! everything in it (argv, environment, the source's digest, output names) determines
//! the object. REAPI has no notion of which compiler a worker runs, so the caller puts
//! the client's compiler identity in the environment (`SWARMCC_COMPILER`): a result is
//! then only reused by clients with the same compiler, but a worker's compiler must be
//! the same at the same path for the result to be right at all.

use super::digest;
use super::proto::build::bazel::remote::execution::v2::{
    command::EnvironmentVariable, Action, Command, Digest, Directory, FileNode,
};

/// What the engine is to run.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// The command line, the program first (an absolute path: workers must have the
    /// same compiler there).
    pub argv: Vec<String>,
    /// The environment, in any order (sorted here as REAPI requires).
    pub env: Vec<(String, String)>,
    /// The source's file name at the top of the input root (no `/`).
    pub input_name: &'a str,
    pub input: &'a [u8],
    /// The object's file name at the top of the input root (no `/`).
    pub output_name: &'a str,
    /// The engine speaks REAPI 2.1 or later: outputs go in `output_paths`, which
    /// replaced `output_files` there.
    pub output_paths: bool,
}

/// A blob to store in the CAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub data: Vec<u8>,
}

/// The action's digest and every blob it needs in the CAS (source, input root,
/// command, action).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub action: Digest,
    pub blobs: Vec<Blob>,
}

/// Builds the action of `job`.
pub fn prepare(job: &Job<'_>) -> Prepared {
    let mut env: Vec<EnvironmentVariable> = job
        .env
        .iter()
        .map(|(name, value)| EnvironmentVariable {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env.dedup_by(|a, b| a.name == b.name);
    let outputs = vec![job.output_name.to_string()];
    // `output_files` is what REAPI 2.0 engines read; 2.1 replaced it by `output_paths`.
    #[allow(deprecated)]
    let command = Command {
        arguments: job.argv.clone(),
        environment_variables: env,
        output_files: if job.output_paths {
            Vec::new()
        } else {
            outputs.clone()
        },
        output_paths: if job.output_paths {
            outputs
        } else {
            Vec::new()
        },
        ..Command::default()
    };
    let source = Blob {
        digest: digest::of(job.input),
        data: job.input.to_vec(),
    };
    let root = Directory {
        files: vec![FileNode {
            name: job.input_name.to_string(),
            digest: Some(source.digest.clone()),
            is_executable: false,
            node_properties: None,
        }],
        ..Directory::default()
    };
    let (command_digest, command_bytes) = digest::of_message(&command);
    let (root_digest, root_bytes) = digest::of_message(&root);
    let action = Action {
        command_digest: Some(command_digest.clone()),
        input_root_digest: Some(root_digest.clone()),
        ..Action::default()
    };
    let (action_digest, action_bytes) = digest::of_message(&action);
    Prepared {
        action: action_digest.clone(),
        blobs: vec![
            source,
            Blob {
                digest: root_digest,
                data: root_bytes,
            },
            Blob {
                digest: command_digest,
                data: command_bytes,
            },
            Blob {
                digest: action_digest,
                data: action_bytes,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn job<'a>(input: &'a [u8], env: &[(&str, &str)]) -> Job<'a> {
        Job {
            argv: vec!["/usr/bin/gcc".into(), "-c".into(), "a.i".into()],
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            input_name: "a.i",
            input,
            output_name: "a.o",
            output_paths: true,
        }
    }

    #[test]
    #[allow(deprecated)]
    fn the_action_names_its_command_and_input_root() {
        let p = prepare(&job(b"int x;", &[("PATH", "/usr/bin"), ("LC_ALL", "C")]));
        let find = |d: &Digest| p.blobs.iter().find(|b| &b.digest == d).unwrap();
        let action = Action::decode(&find(&p.action).data[..]).unwrap();
        let command =
            Command::decode(&find(action.command_digest.as_ref().unwrap()).data[..]).unwrap();
        let names: Vec<&str> = command
            .environment_variables
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, ["LC_ALL", "PATH"], "sorted, as REAPI requires");
        assert_eq!(command.output_paths, ["a.o"]);
        assert!(command.output_files.is_empty());
        let root =
            Directory::decode(&find(action.input_root_digest.as_ref().unwrap()).data[..]).unwrap();
        assert_eq!(root.files[0].name, "a.i");
        assert_eq!(find(root.files[0].digest.as_ref().unwrap()).data, b"int x;");
        for b in &p.blobs {
            assert_eq!(b.digest, digest::of(&b.data));
        }
    }

    #[test]
    #[allow(deprecated)]
    fn the_key_changes_with_source_and_compiler_identity() {
        let a = prepare(&job(b"int x;", &[("SWARMCC_COMPILER", "gcc 12")])).action;
        assert_eq!(
            a,
            prepare(&job(b"int x;", &[("SWARMCC_COMPILER", "gcc 12")])).action
        );
        assert_ne!(
            a,
            prepare(&job(b"int y;", &[("SWARMCC_COMPILER", "gcc 12")])).action
        );
        assert_ne!(
            a,
            prepare(&job(b"int x;", &[("SWARMCC_COMPILER", "gcc 13")])).action
        );
        let mut old = job(b"int x;", &[]);
        old.output_paths = false;
        let p = prepare(&old);
        let find = |d: &Digest| p.blobs.iter().find(|b| &b.digest == d).unwrap();
        let action = Action::decode(&find(&p.action).data[..]).unwrap();
        let command =
            Command::decode(&find(action.command_digest.as_ref().unwrap()).data[..]).unwrap();
        assert_eq!(command.output_files, ["a.o"], "REAPI 2.0 engines");
    }
}
