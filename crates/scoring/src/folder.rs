//! Labelled image folders, `<root>/<class>/<file>`, as a directory or a `.tar.gz` of one.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{ScoringError, io};

/// `(class, file name) -> bytes` of an image folder, in a stable order.
pub type Files = BTreeMap<(String, String), Vec<u8>>;

/// Whether `path` names a gzipped tar archive.
pub fn is_targz(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

/// The files of an image folder (a directory or a `.tar.gz` of one), not yet decoded.
pub fn read_image_files(path: &Path) -> Result<Files, ScoringError> {
    if is_targz(path) {
        read_targz(path)
    } else {
        read_dir_tree(path)
    }
}

/// Class names of an image folder's files in label order: `known`'s order when the
/// folders are exactly those classes (a model's labels, CIFAR-10's), else sorted.
pub fn class_names<S: AsRef<str>>(files: &Files, known: &[S]) -> Vec<String> {
    class_names_of(files.keys().map(|(c, _)| c.as_str()), known)
}

/// [`class_names`] for the class of each file, in any order.
pub fn class_names_of<'a, S: AsRef<str>>(classes: impl Iterator<Item = &'a str>, known: &[S]) -> Vec<String> {
    let mut names: Vec<String> = classes.map(str::to_string).collect();
    names.sort_unstable();
    names.dedup();
    let mut sorted_known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
    sorted_known.sort_unstable();
    if names == sorted_known {
        known.iter().map(|s| s.as_ref().to_string()).collect()
    } else {
        names
    }
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// `(class, file name)` of a directory's images, sorted, without reading them: for
/// datasets too big to hold (`trainer data shard`).
pub fn list_image_files(root: &Path) -> Result<Vec<(String, String)>, ScoringError> {
    let mut listed = Vec::new();
    walk_dir_tree(root, |class, name, _| {
        listed.push((class.to_string(), name.to_string()));
        Ok(())
    })?;
    listed.sort_unstable();
    Ok(listed)
}

fn read_dir_tree(root: &Path) -> Result<Files, ScoringError> {
    let mut files = Files::new();
    walk_dir_tree(root, |class, name, path| {
        let bytes = fs::read(path).map_err(io(path))?;
        files.insert((class.to_string(), name.to_string()), bytes);
        Ok(())
    })?;
    Ok(files)
}

/// Calls `visit(class, file name, path)` for each visible file of `<root>/<class>/`.
fn walk_dir_tree(
    root: &Path,
    mut visit: impl FnMut(&str, &str, &Path) -> Result<(), ScoringError>,
) -> Result<(), ScoringError> {
    for class in fs::read_dir(root).map_err(io(root))? {
        let class = class.map_err(io(root))?;
        let class_name = class.file_name().to_string_lossy().into_owned();
        if !class.path().is_dir() || is_hidden(&class_name) {
            continue;
        }
        for file in fs::read_dir(class.path()).map_err(io(class.path()))? {
            let file = file.map_err(io(class.path()))?;
            let name = file.file_name().to_string_lossy().into_owned();
            if file.path().is_file() && !is_hidden(&name) {
                visit(&class_name, &name, &file.path())?;
            }
        }
    }
    Ok(())
}

fn read_targz(path: &Path) -> Result<Files, ScoringError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut files = Files::new();
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let entry_path: PathBuf = entry.path().map_err(io(path))?.into_owned();
        let name = entry_path.file_name().map(|n| n.to_string_lossy().into_owned());
        let class = entry_path
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned());
        let (Some(name), Some(class)) = (name, class) else {
            continue;
        };
        if is_hidden(&name) || is_hidden(&class) {
            continue;
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).map_err(io(path))?;
        files.insert((class, name), bytes);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_and_its_archive_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("set");
        for (class, file) in [("dog", "a.png"), ("cat", "b.png"), ("cat", ".hidden")] {
            fs::create_dir_all(root.join(class)).unwrap();
            fs::write(root.join(class).join(file), format!("{class}/{file}")).unwrap();
        }
        let plain = read_image_files(&root).unwrap();
        assert_eq!(plain.len(), 2);
        let archive = dir.path().join("set.tar.gz");
        let gz = flate2::write::GzEncoder::new(fs::File::create(&archive).unwrap(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all("set", &root).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        assert_eq!(read_image_files(&archive).unwrap(), plain);
        assert_eq!(
            list_image_files(&root).unwrap(),
            plain.keys().cloned().collect::<Vec<_>>()
        );
        assert_eq!(class_names(&plain, &["dog", "cat"]), ["dog", "cat"], "the known order");
        assert_eq!(class_names(&plain, &["dog", "cat", "cow"]), ["cat", "dog"], "sorted");
        assert!(matches!(
            read_image_files(&dir.path().join("missing")),
            Err(ScoringError::Io { .. })
        ));
    }
}
