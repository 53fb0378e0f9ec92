//! The WHIP/WHEP [`Target`]: drives Sluice and the bare forwarder (which serves the same
//! endpoints). A publisher is `POST /whip/{room}` with its offer (201, `Location`, the answer,
//! and the participant id in `x-sluice-participant`); a subscription is
//! `POST /whep/{room}/{participant}` with a `recvonly` offer; `DELETE` on a `Location` hangs
//! up.

use anyhow::{Context as _, bail};

use super::http::{self, HttpResponse, HttpUrl};
use super::target::{Publication, Resource, SdpSide, Target};

/// Sluice (or the bare forwarder) at `http://host:port`.
#[derive(Debug, Clone)]
pub struct WhipTarget {
    base: HttpUrl,
    label: String,
}

impl WhipTarget {
    /// A target whose HTTP service is at `url`, reported as `label`.
    pub fn connect(url: &str, label: &str) -> anyhow::Result<Self> {
        let base = HttpUrl::parse(url)?;
        let health = http::request("GET", &base.join("/healthz")?, None, "")
            .with_context(|| format!("{label} at {url} does not answer"))?;
        if !health.is_success() {
            bail!("{label} at {url}: /healthz answered {}", health.status);
        }
        Ok(WhipTarget {
            base,
            label: label.to_owned(),
        })
    }

    fn post_sdp(&self, path: &str, offer: &str) -> anyhow::Result<(HttpResponse, HttpUrl)> {
        let url = self.base.join(path)?;
        let response = http::request("POST", &url, Some("application/sdp"), offer)?;
        if response.status != 201 {
            bail!(
                "POST {url} answered {}: {}",
                response.status,
                response.body.trim()
            );
        }
        let location = response
            .header("location")
            .with_context(|| format!("POST {url}: no Location"))?;
        let resource = self.base.join(location)?;
        Ok((response, resource))
    }
}

/// Room names go into a path segment: the scenarios use plain ASCII names, anything else is
/// escaped.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Target for WhipTarget {
    fn label(&self) -> &str {
        &self.label
    }

    fn prepare_room(
        &mut self,
        _room: &str,
        _publishers: usize,
        _subscribers: usize,
    ) -> anyhow::Result<()> {
        // WHIP creates the room with its first publisher.
        Ok(())
    }

    fn publish(&mut self, room: &str, name: &str, offer: &str) -> anyhow::Result<Publication> {
        let path = format!("/whip/{}?name={}", path_segment(room), path_segment(name));
        let (response, resource) = self.post_sdp(&path, offer)?;
        let publisher_id = match response.header("x-sluice-participant") {
            Some(id) => id.to_owned(),
            None => bail!("POST {path}: no x-sluice-participant header"),
        };
        Ok(Publication {
            answer: response.body,
            publisher_id,
            resource: Resource(resource.to_string()),
        })
    }

    fn subscribe(
        &mut self,
        room: &str,
        publication: &Publication,
        side: &mut dyn SdpSide,
    ) -> anyhow::Result<Resource> {
        let offer = side.offer()?;
        let path = format!(
            "/whep/{}/{}",
            path_segment(room),
            path_segment(&publication.publisher_id)
        );
        let (response, resource) = self.post_sdp(&path, &offer)?;
        side.accept_answer(&response.body)?;
        Ok(Resource(resource.to_string()))
    }

    fn hang_up(&mut self, resource: &Resource) -> anyhow::Result<()> {
        let url = HttpUrl::parse(&resource.0)?;
        let response = http::request("DELETE", &url, None, "")?;
        if !response.is_success() {
            bail!("DELETE {url} answered {}", response.status);
        }
        Ok(())
    }
}
