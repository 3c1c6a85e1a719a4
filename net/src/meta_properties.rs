//! `meta.properties` in the data directory: the cluster id, made once and kept, and the node id it
//! was made for. Kafka's KRaft format (version 1):
//!
//! ```text
//! cluster.id=<22-character base64url id>
//! node.id=<int>
//! version=1
//! ```
//!
//! Starting with a different `node.id` than the stored one is refused, as Kafka does: the data
//! belongs to that node.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The file name inside the data directory.
pub const FILE_NAME: &str = "meta.properties";

/// Why `meta.properties` could not be read or written.
#[derive(Debug)]
pub enum MetaError {
    /// Reading, writing or syncing failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The file exists but is not usable.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            MetaError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for MetaError {}

/// What `meta.properties` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// The cluster id.
    pub cluster_id: String,
    /// The node id the directory belongs to.
    pub node_id: i32,
}

/// Reads `data_dir/meta.properties`, or creates it (with a new cluster id) if it does not exist.
/// `data_dir` must exist.
pub fn load_or_create(data_dir: &Path, node_id: i32) -> Result<MetaProperties, MetaError> {
    let path = data_dir.join(FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let meta = parse(&text).map_err(|reason| MetaError::Invalid { path: path.clone(), reason })?;
            if meta.node_id != node_id {
                let reason = format!(
                    "stored node.id {} does not match the configured node id {node_id}; this data directory \
                     belongs to another node",
                    meta.node_id
                );
                return Err(MetaError::Invalid { path, reason });
            }
            Ok(meta)
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let meta = MetaProperties { cluster_id: new_cluster_id(), node_id };
            write_durably(data_dir, &path, &render(&meta))?;
            Ok(meta)
        }
        Err(source) => Err(MetaError::Io { path, source }),
    }
}

/// Parses the file's text (Java properties subset: `key=value` lines, `#` comments).
pub fn parse(text: &str) -> Result<MetaProperties, String> {
    let (mut cluster_id, mut node_id, mut version) = (None, None, None);
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with(['#', '!'])) {
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {line:?} is not key=value"));
        };
        let value = value.trim();
        match key.trim() {
            "cluster.id" => cluster_id = Some(value.to_owned()),
            "node.id" => {
                node_id = Some(value.parse::<i32>().map_err(|_| format!("node.id {value:?} is not a number"))?)
            }
            "version" => version = Some(value.to_owned()),
            _ => {} // Kafka writes others (directory.id); they are kept by nobody here.
        }
    }
    if version.as_deref() != Some("1") {
        return Err(format!("version is {version:?}, only 1 is supported"));
    }
    let cluster_id = cluster_id.filter(|id| !id.is_empty()).ok_or("cluster.id is missing")?;
    let node_id = node_id.ok_or("node.id is missing")?;
    Ok(MetaProperties { cluster_id, node_id })
}

fn render(meta: &MetaProperties) -> String {
    format!("cluster.id={}\nnode.id={}\nversion=1\n", meta.cluster_id, meta.node_id)
}

/// A Kafka-style cluster id: 16 random bytes in unpadded base64url (22 characters), never starting
/// with '-' (Kafka's `Uuid.randomUuid` avoids those, as they read like command-line flags).
pub fn new_cluster_id() -> String {
    loop {
        let id = base64url(&rand::random::<[u8; 16]>());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| acc | (u32::from(*byte) << (16 - 8 * i)));
        for sextet in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((group >> (18 - 6 * sextet)) & 0x3f) as usize]));
        }
    }
    out
}

/// Writes `path` so that a crash leaves either no file or the whole file: temporary file, fsync,
/// rename, fsync of the directory.
fn write_durably(dir: &Path, path: &Path, text: &str) -> Result<(), MetaError> {
    let temporary = path.with_extension("properties.tmp");
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MetaError::Io { path, source }
    };
    let mut file = fs::File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(text.as_bytes()).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    fs::rename(&temporary, path).map_err(io_error(path))?;
    fs::File::open(dir).and_then(|dir| dir.sync_all()).map_err(io_error(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_standard() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(new_cluster_id().len(), 22);
    }

    #[test]
    fn created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), 3).unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, format!("cluster.id={}\nnode.id=3\nversion=1\n", first.cluster_id));
        assert_eq!(load_or_create(dir.path(), 3).unwrap(), first);
        assert!(!dir.path().join("meta.properties.tmp").exists());
    }

    #[test]
    fn another_node_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), 0).unwrap();
        let error = load_or_create(dir.path(), 1).unwrap_err();
        assert!(error.to_string().contains("does not match"), "{error}");
    }

    #[test]
    fn reads_kafkas_own_files() {
        let text = "#\n#Mon Jan 01 00:00:00 UTC 2024\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\ndirectory.id=abc\nnode.id=1\nversion=1\n";
        assert_eq!(parse(text), Ok(MetaProperties { cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(), node_id: 1 }));
        assert!(parse("cluster.id=x\nnode.id=1\nversion=0\n").is_err(), "ZooKeeper-era version 0");
        assert!(parse("node.id=1\nversion=1\n").is_err());
        assert!(parse("cluster.id=x\nnode.id=one\nversion=1\n").is_err());
        assert!(parse("garbage\n").is_err());
    }
}
