//! The web app embedded at build time (see build.rs) and its content types.

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The embedded file for a URL path; `/` is the app's index page.
pub fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    let path = if path == "/" { "/app/index.html" } else { path };
    let (_, body) = ASSETS.iter().find(|(url, _)| *url == path)?;
    Some((body, content_type(path)))
}

pub fn content_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
    match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("/app/index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("/lib/sluice.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/app/style.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/app/noextension"), "application/octet-stream");
    }

    /// Every file on disk under client-js/app and client-js/lib is embedded with its bytes.
    #[test]
    fn every_client_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-js");
        let mut on_disk = 0;
        let mut stack: Vec<(std::path::PathBuf, String)> = ["app", "lib"]
            .iter()
            .map(|p| (root.join(p), format!("/{p}")))
            .collect();
        while let Some((dir, url)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.map(Result::unwrap) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let child = format!("{url}/{name}");
                if entry.file_type().unwrap().is_dir() {
                    stack.push((entry.path(), child));
                } else {
                    on_disk += 1;
                    let (body, _) =
                        find(&child).unwrap_or_else(|| panic!("{child} is not embedded"));
                    assert_eq!(
                        body,
                        std::fs::read(entry.path()).unwrap().as_slice(),
                        "{child}"
                    );
                }
            }
        }
        assert_eq!(on_disk, ASSETS.len());
    }
}
