//! Offers captured from real browsers (Chromium 156, Firefox ESR 153): publish = sendonly
//! audio+video (WHIP), subscribe = recvonly (WHEP), sendrecv, simulcast with rids q/h/f.

macro_rules! fixtures {
    ($($name:literal),*) => {
        /// `(name, text)` of every fixture.
        pub(crate) const ALL: &[(&str, &str)] =
            &[$(($name, include_str!(concat!("fixtures/", $name, ".sdp")))),*];
    };
}

fixtures!(
    "chromium-publish",
    "chromium-sendrecv",
    "chromium-simulcast",
    "chromium-subscribe",
    "firefox-publish",
    "firefox-sendrecv",
    "firefox-simulcast",
    "firefox-subscribe"
);

/// The fixture called `name`.
pub(crate) fn get(name: &str) -> &'static str {
    ALL.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_default()
}
