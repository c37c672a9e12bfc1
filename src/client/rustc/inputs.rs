//! What a rustc job may read, found before it runs: the package's files (its
//! `CARGO_MANIFEST_DIR`, without target directories, version control's and nested
//! packages), a workspace root's own files, the build script's `OUT_DIR`, the `--extern` files, and the crates in
//! the `-L dependency=` directories (metadata, proc-macros, and the rlibs when the job
//! links). The server proves afterwards, by rustc's own dep-info, that nothing else
//! was read (`results`).
//!
//! Each file's sha256 is kept under `DISTCC_DIR/rustc-hashes`, keyed by its path,
//! inode, size and times, so that the dependencies of a large graph are hashed once,
//! not for every crate.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::args::rustc::{self as rustc_args, normalise, RustcJob};
use crate::blobs::sha256_hex;
use crate::config::ClientConfig;
use crate::protocol::rustc::JobFile;

/// More files than this in a package (a vendored data set, say): rustc runs here.
const MAX_FILES: usize = 20_000;
/// Version control's directories, never read by a compile (other hidden directories,
/// such as sqlx's `.sqlx`, may be read by proc-macros).
const VCS_DIRS: [&str; 5] = [".git", ".hg", ".svn", ".jj", ".pijul"];
/// More bytes than this in all: rustc runs here.
const MAX_BYTES: u64 = 2 << 30;

/// A job's inputs and the rest of its request.
#[derive(Debug)]
pub(super) struct Inputs {
    pub(super) cwd: String,
    pub(super) env: Vec<(String, String)>,
    pub(super) files: Vec<JobFile>,
}

impl Inputs {
    pub(super) fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Whether `path` (absolute, normalised) was sent.
    pub(super) fn has(&self, path: &str) -> bool {
        self.files.iter().any(|f| f.path == path)
    }
}

/// Where a job runs and what cargo told it: from this process, or made up (a probe).
#[derive(Debug, Clone)]
pub(super) struct Site {
    pub(super) cwd: PathBuf,
    /// The package's directory (`CARGO_MANIFEST_DIR`).
    pub(super) manifest: PathBuf,
    /// The build script's output (`OUT_DIR`).
    pub(super) out_dir: Option<PathBuf>,
    /// The variables sent with the job.
    pub(super) env: Vec<(String, String)>,
}

impl Site {
    /// This process's: its working directory and the environment cargo gave it.
    pub(super) fn here() -> Result<Site, String> {
        let cwd = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .ok_or("not run by cargo (no absolute CARGO_MANIFEST_DIR)")?;
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute());
        // What the build script set with `cargo:rustc-env` goes too: `env!` reads it.
        let extra = out_dir
            .as_ref()
            .and_then(|d| fs::read_to_string(d.parent()?.join("output")).ok())
            .map(|text| rustc_args::build_script_env(&text))
            .unwrap_or_default();
        let env = std::env::vars()
            .filter(|(name, _)| rustc_args::forwarded_env(name) || extra.contains(name))
            .collect();
        Ok(Site {
            cwd,
            manifest,
            out_dir,
            env,
        })
    }
}

/// Finds and hashes the inputs; `Err` says why the job must run here.
pub(super) fn collect(cfg: &ClientConfig, job: &RustcJob, site: Site) -> Result<Inputs, String> {
    let cwd = normalise(&site.cwd);
    let manifest = normalise(&site.manifest);
    let out_dir = site.out_dir.map(|p| normalise(&p));
    let input = normalise(&cwd.join(&job.input));
    let inside = |dir: &Option<PathBuf>| dir.as_ref().is_some_and(|d| input.starts_with(d));
    if !input.starts_with(&manifest) && !inside(&out_dir) {
        return Err(format!("{} is outside its package", input.display()));
    }
    let mut found = Found::default();
    found.walk(&manifest, true)?;
    if cwd != manifest && manifest.starts_with(&cwd) {
        // A workspace member (cargo runs rustc in the workspace's root): the root's own
        // files, which members include (`include_str!("../../README.md")`).
        found.files_of(&cwd)?;
    }
    if let Some(dir) = &out_dir {
        found.walk(dir, false)?;
    }
    for (_, path) in &job.externs {
        if let Some(p) = path {
            found.add(&normalise(&cwd.join(p)))?;
        }
    }
    for dir in &job.dependency_dirs {
        found.dependencies(&normalise(&cwd.join(dir)), job.links)?;
    }
    let hashes = HashCache::new(cfg);
    let mut files = Vec::with_capacity(found.paths.len());
    for path in found.paths {
        let meta = fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let hash = hashes.hash(&path, &meta)?;
        files.push(JobFile {
            hash,
            executable: meta.permissions().mode() & 0o111 != 0,
            size: meta.len(),
            path: path.to_string_lossy().into_owned(),
        });
    }
    Ok(Inputs {
        cwd: cwd.to_string_lossy().into_owned(),
        env: site.env,
        files,
    })
}

#[derive(Default)]
struct Found {
    paths: Vec<PathBuf>,
    seen: std::collections::HashSet<PathBuf>,
    bytes: u64,
}

impl Found {
    fn add(&mut self, path: &Path) -> Result<(), String> {
        if !self.seen.insert(path.to_owned()) {
            return Ok(());
        }
        let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.bytes += meta.len();
        if self.paths.len() >= MAX_FILES || self.bytes > MAX_BYTES {
            return Err(format!(
                "more than {MAX_FILES} files or {} MiB of inputs",
                MAX_BYTES >> 20
            ));
        }
        self.paths.push(path.to_owned());
        Ok(())
    }

    /// Every file below `dir`; in a package, not its target directories (marked by
    /// `CACHEDIR.TAG`), hidden directories or nested packages.
    fn walk(&mut self, dir: &Path, package: bool) -> Result<(), String> {
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    let skip = package
                        && (VCS_DIRS.contains(&name.to_string_lossy().as_ref())
                            || path.join("CACHEDIR.TAG").exists()
                            || path.join("Cargo.toml").exists());
                    if !skip {
                        stack.push(path);
                    }
                } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
                    self.add(&path)?;
                }
            }
        }
        Ok(())
    }

    /// The files directly in `dir`.
    fn files_of(&mut self, dir: &Path) -> Result<(), String> {
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                self.add(&entry.path())?;
            }
        }
        Ok(())
    }

    /// The crates rustc may look up in a `-L dependency=` directory.
    fn dependencies(&mut self, dir: &Path, links: bool) -> Result<(), String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = name.starts_with("lib")
                && (name.ends_with(".rmeta")
                    || name.ends_with(".so")
                    || (links && name.ends_with(".rlib")));
            if wanted && entry.file_type().is_ok_and(|t| t.is_file()) {
                self.add(&entry.path())?;
            }
        }
        Ok(())
    }
}

const PRUNE_EVERY: u32 = 256;
const PRUNE_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

fn prune(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > PRUNE_AGE);
        if old {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// sha256 of files by identity (path, inode, size, times).
struct HashCache {
    dir: PathBuf,
}

impl HashCache {
    fn new(cfg: &ClientConfig) -> HashCache {
        let dir = cfg.distcc_dir.join("rustc-hashes");
        let _ = fs::create_dir_all(&dir);
        // One wrapper in PRUNE_EVERY clears out entries not written for PRUNE_AGE: the
        // cache follows the builds of the last weeks, not every file ever built.
        if std::process::id().is_multiple_of(PRUNE_EVERY) {
            prune(&dir);
        }
        HashCache { dir }
    }

    fn hash(&self, path: &Path, meta: &fs::Metadata) -> Result<String, String> {
        let key = sha256_hex(
            format!(
                "{}\0{}\0{}\0{}\0{}.{}\0{}.{}",
                path.display(),
                meta.dev(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec()
            )
            .as_bytes(),
        );
        let entry = self.dir.join(&key[..40]);
        if let Ok(known) = fs::read_to_string(&entry) {
            if crate::blobs::is_hash(&known) {
                return Ok(known);
            }
        }
        let data = fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let hash = sha256_hex(&data);
        let tmp = self
            .dir
            .join(format!(".{}.{}", &key[..40], std::process::id()));
        if fs::write(&tmp, &hash).is_ok() && fs::rename(&tmp, &entry).is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(hash)
    }
}
