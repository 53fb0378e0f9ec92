//! Embeds the web app: every file under ../client-js/app and ../client-js/lib becomes an
//! entry of a generated table `ASSETS: &[(&str, &[u8])]`, keyed by its URL path
//! (`/app/index.html`, `/lib/sluice.js`), so that the binary alone serves everything.

use std::path::{Path, PathBuf};
use std::{env, fs, io};

fn collect(dir: &Path, url: &str, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let child = format!("{url}/{name}");
        if entry.file_type()?.is_dir() {
            collect(&path, &child, out)?;
        } else {
            out.push((child, path.canonicalize()?));
        }
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let client =
        Path::new(&env::var("CARGO_MANIFEST_DIR").map_err(io::Error::other)?).join("../client-js");
    // A directory is rescanned recursively by cargo, so new and changed files are picked up.
    println!("cargo::rerun-if-changed={}", client.display());
    let mut files = Vec::new();
    for part in ["app", "lib"] {
        let dir = client.join(part);
        if dir.is_dir() {
            collect(&dir, &format!("/{part}"), &mut files)?;
        }
    }
    let mut code = String::from(
        "/// Embedded web-app files by URL path.\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (url, path) in &files {
        let path = path
            .to_str()
            .ok_or_else(|| io::Error::other("non-UTF-8 path"))?;
        code.push_str(&format!("    ({url:?}, include_bytes!({path:?})),\n"));
    }
    code.push_str("];\n");
    fs::write(
        Path::new(&env::var("OUT_DIR").map_err(io::Error::other)?).join("assets.rs"),
        code,
    )
}
