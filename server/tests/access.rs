//! The `sluice` binary and access tokens: `sluice token` prints a token the server's key
//! verifies; a server started without a key says it runs open; one started with a key
//! refuses requests without a token and accepts those with one made by `sluice token`.

#[path = "support/binary.rs"]
mod binary;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use binary::Sluice;
use signaling::AccessKeys;

const KEY: &str = "cli-key";
const SECRET: &str = "a command-line secret longer than 32 bytes";

/// `sluice` with no `SLUICE_*` access variables inherited from the environment.
fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("SLUICE_API_KEY")
        .env_remove("SLUICE_API_SECRET");
    command
}

fn token(args: &[&str]) -> anyhow::Result<Output> {
    Ok(sluice()
        .arg("token")
        .args(args)
        .env("SLUICE_API_KEY", KEY)
        .env("SLUICE_API_SECRET", SECRET)
        .output()?)
}

#[test]
fn sluice_token_prints_a_token_the_key_verifies() -> anyhow::Result<()> {
    let output = token(&[
        "--room",
        "lobby",
        "--identity",
        "ada",
        "--name",
        "Ada",
        "--admin",
        "--ttl",
        "5m",
    ])?;
    anyhow::ensure!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout)?;
    let now = signaling::auth::unix_now();
    let claims = AccessKeys::single(KEY, SECRET)?.verify(text.trim(), now)?;
    anyhow::ensure!(claims.sub.as_deref() == Some("ada"), "{claims:?}");
    anyhow::ensure!(claims.name.as_deref() == Some("Ada"), "{claims:?}");
    anyhow::ensure!(claims.video.room.as_deref() == Some("lobby"));
    anyhow::ensure!(claims.video.room_join && claims.video.room_admin);
    let exp = claims.exp.unwrap_or_default();
    anyhow::ensure!(
        (now + 290..=now + 310).contains(&exp),
        "exp {exp} for a 5m ttl"
    );
    // Another secret does not verify it.
    let other = AccessKeys::single(KEY, "some other secret")?;
    anyhow::ensure!(other.verify(text.trim(), now).is_err());
    Ok(())
}

#[test]
fn sluice_token_without_a_key_fails_clearly() -> anyhow::Result<()> {
    let output = sluice()
        .args(["token", "--room", "r", "--identity", "i"])
        .output()?;
    anyhow::ensure!(!output.status.success());
    anyhow::ensure!(output.stdout.is_empty(), "no token printed");
    let error = String::from_utf8(output.stderr)?;
    anyhow::ensure!(error.contains("--api-key"), "{error}");
    Ok(())
}

/// Starts the server with `args` and returns it with its HTTP address and the line after
/// the startup line, which says whether access tokens are required.
fn start(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(Sluice, String, String)> {
    let server = Sluice::start(args, env)?;
    let access = server.next_line(Duration::from_secs(10))?;
    let address = server.address.clone();
    Ok((server, address, access))
}

/// The status of one HTTP/1.1 GET.
fn get(address: &str, path: &str, token: Option<&str>) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("no status in {response:?}"))?;
    Ok(status.parse()?)
}

fn stop(server: Sluice) -> anyhow::Result<()> {
    server.stop()?;
    Ok(())
}

#[test]
fn without_a_key_the_server_says_it_runs_open() -> anyhow::Result<()> {
    let (child, address, warnings) = start(&[], &[])?;
    let result = (|| {
        anyhow::ensure!(warnings.contains("runs OPEN"), "{warnings:?}");
        anyhow::ensure!(warnings.contains("--api-key"), "{warnings:?}");
        anyhow::ensure!(get(&address, "/api/rooms", None)? == 200);
        anyhow::ensure!(get(&address, "/metrics", None)? == 200);
        Ok(())
    })();
    stop(child)?;
    result
}

#[test]
fn with_a_key_the_server_requires_tokens() -> anyhow::Result<()> {
    let (child, address, warnings) = start(&["--api-key", KEY, "--api-secret", SECRET], &[])?;
    let result = (|| {
        anyhow::ensure!(!warnings.contains("OPEN"), "{warnings:?}");
        anyhow::ensure!(warnings.contains("access tokens required"), "{warnings:?}");
        anyhow::ensure!(get(&address, "/healthz", None)? == 200);
        anyhow::ensure!(get(&address, "/metrics", None)? == 401);
        anyhow::ensure!(get(&address, "/api/rooms", None)? == 401);
        let lister = token(&["--room", "r", "--identity", "ops", "--list"])?;
        let lister = String::from_utf8(lister.stdout)?;
        anyhow::ensure!(get(&address, "/api/rooms", Some(lister.trim()))? == 200);
        anyhow::ensure!(get(&address, "/metrics", Some(lister.trim()))? == 200);
        let member = token(&["--room", "r", "--identity", "ada"])?;
        let member = String::from_utf8(member.stdout)?;
        anyhow::ensure!(get(&address, "/api/rooms", Some(member.trim()))? == 403);
        Ok(())
    })();
    stop(child)?;
    result
}

#[test]
fn the_key_can_come_from_the_environment() -> anyhow::Result<()> {
    let env = [("SLUICE_API_KEY", KEY), ("SLUICE_API_SECRET", SECRET)];
    let (child, address, _) = start(&[], &env)?;
    let result = (|| {
        anyhow::ensure!(get(&address, "/api/rooms", None)? == 401);
        Ok(())
    })();
    stop(child)?;
    result
}
