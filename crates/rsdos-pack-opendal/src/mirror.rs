//! [`RemoteMirror`] for [`OpendalPackStore`]: metadata files (the container's `config.json`
//! and index snapshots) stored next to the packs, under the same prefix.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rsdos_core::{Error, PackId, RemoteMirror, Result};

use crate::store::OpendalPackStore;

/// Files up to this size are sent in one request; larger ones in parts.
const SINGLE_PUT_MAX: u64 = 16 << 20;

/// Metadata names are plain relative keys: no empty segment, no `.` or `..`.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid remote metadata name {name:?}"
        )))
    }
}

impl RemoteMirror for OpendalPackStore {
    fn url(&self) -> String {
        self.location().to_string()
    }

    fn staging_dir(&self) -> &Path {
        OpendalPackStore::staging_dir(self)
    }

    fn staged(&self) -> Result<Vec<PackId>> {
        OpendalPackStore::staged(self)
    }

    fn uploaded(&self) -> Result<Vec<PackId>> {
        OpendalPackStore::uploaded(self)
    }

    fn put_meta(&self, name: &str, data: &[u8]) -> Result<()> {
        check_name(name)?;
        self.blocking_operator()
            .write(name, data.to_vec())
            .map_err(|e| self.remote_error("upload", name, e))?;
        Ok(())
    }

    fn put_meta_file(&self, name: &str, path: &Path) -> Result<()> {
        check_name(name)?;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let op = self.blocking_operator();
        // GCS (and its emulator) gets one request, as for packs.
        let single = len <= SINGLE_PUT_MAX.max(self.options().single_put_max)
            || matches!(self.location().scheme.as_str(), "gs" | "gcs");
        if single {
            let mut all = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut all)
                .map_err(|e| Error::io("read", path, e))?;
            op.write(name, all)
                .map_err(|e| self.remote_error("upload", name, e))?;
            return Ok(());
        }
        let chunk = self.options().chunk_size;
        let opts = opendal::options::WriteOptions {
            chunk: Some(chunk),
            concurrent: 1,
            ..Default::default()
        };
        let mut writer = op
            .writer_options(name, opts)
            .map_err(|e| self.remote_error("start upload of", name, e))?;
        // A failed multipart upload is left for the service to expire (the blocking writer
        // has no abort); the object itself is unchanged until `close` succeeds.
        (|| {
            loop {
                let mut part = Vec::with_capacity(chunk);
                (&mut file)
                    .take(chunk as u64)
                    .read_to_end(&mut part)
                    .map_err(|e| Error::io("read", path, e))?;
                if part.is_empty() {
                    break;
                }
                writer
                    .write(part)
                    .map_err(|e| self.remote_error("upload", name, e))?;
            }
            writer
                .close()
                .map_err(|e| self.remote_error("complete upload of", name, e))?;
            Ok(())
        })()
    }

    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_name(name)?;
        match self.blocking_operator().read(name) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.remote_error("download", name, e)),
        }
    }

    fn get_meta_to_file(&self, name: &str, dest: &Path) -> Result<bool> {
        check_name(name)?;
        let op = self.blocking_operator();
        let len = match op.stat(name) {
            Ok(m) => m.content_length(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.remote_error("stat", name, e)),
        };
        let mut reader = op
            .reader(name)
            .and_then(|r| r.into_std_read(0..len))
            .map_err(|e| self.remote_error("download", name, e))?;
        let mut file = std::fs::File::create(dest).map_err(|e| Error::io("create", dest, e))?;
        let copied = std::io::copy(&mut reader, &mut file)
            .map_err(|e| Error::io("download", PathBuf::from(self.location().key_url(name)), e))?;
        if copied != len {
            return Err(Error::corrupt(
                "remote file",
                self.location().key_url(name),
                format!("expected {len} bytes, got {copied} (changed while downloading?)"),
            ));
        }
        file.flush().map_err(|e| Error::io("write", dest, e))?;
        file.sync_all().map_err(|e| Error::io("fsync", dest, e))?;
        Ok(true)
    }

    fn delete_meta(&self, name: &str) -> Result<()> {
        check_name(name)?;
        match self.blocking_operator().delete(name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.remote_error("delete", name, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsdos_core::PackStore;

    #[test]
    fn meta_files_round_trip_and_are_not_packs() {
        let staging = tempfile::tempdir().expect("tempdir");
        let store = OpendalPackStore::open("memory://", staging.path()).expect("open");
        assert_eq!(store.get_meta("index/packs.idx").expect("get"), None);
        store.put_meta("config.json", b"{}").expect("put");
        let file = staging.path().join("src.bin");
        std::fs::write(&file, vec![7u8; 1000]).expect("write");
        store
            .put_meta_file("index/packs.idx", &file)
            .expect("put file");
        let dest = staging.path().join("dest.bin");
        assert!(
            store
                .get_meta_to_file("index/packs.idx", &dest)
                .expect("get file")
        );
        assert_eq!(std::fs::read(&dest).expect("read"), vec![7u8; 1000]);
        assert_eq!(
            store.get_meta("config.json").expect("get"),
            Some(b"{}".to_vec())
        );
        assert!(store.list().expect("list").is_empty());
        store.delete_meta("config.json").expect("delete");
        store.delete_meta("config.json").expect("delete absent");
        assert_eq!(store.get_meta("config.json").expect("get"), None);
        assert!(
            !store
                .get_meta_to_file("nope", &dest.with_extension("x"))
                .expect("absent")
        );
        assert!(store.put_meta("../x", b"").is_err());
    }
}
