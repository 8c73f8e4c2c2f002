//! `tasklens login URL`: a server and its token kept for later commands, in
//! `$XDG_CONFIG_HOME/tasklens/login.toml` (or `~/.config/…`), readable by the user
//! alone. A command uses them when neither a flag nor an environment variable names
//! a server; the token goes only to the server it was saved with.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{ClientArgs, LoginArgs};
use crate::client::Client;

/// The server commands talk to when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    pub server: String,
    pub token: String,
}

/// Where the login is kept; `None` without a home directory.
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("tasklens").join("login.toml"))
}

/// The saved login, if any.
///
/// # Errors
/// A file that cannot be read or parsed, or that others may read.
pub fn saved() -> Result<Option<Saved>> {
    let Some(path) = path() else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mode = std::fs::metadata(&path)?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} holds a token and others may read it (mode {:o}): `chmod 600` it, or run `tasklens login` again",
            path.display(),
            mode & 0o777
        );
    }
    let saved = toml::from_str(&text)
        .with_context(|| format!("{} is not a saved login", path.display()))?;
    Ok(Some(saved))
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim()
        .trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim().trim_end_matches('/'))
}

/// The server and token a command uses: the flags and environment first; the saved
/// login for what they leave out, its token only for its own server.
pub fn resolve(args: &ClientArgs, saved: Option<Saved>) -> (String, Option<String>) {
    match (args.server.as_deref(), saved) {
        (Some(server), Some(saved)) if same_server(server, &saved.server) => {
            (server.to_owned(), args.token.clone().or(Some(saved.token)))
        }
        (Some(server), _) => (server.to_owned(), args.token.clone()),
        (None, Some(saved)) => (saved.server, args.token.clone().or(Some(saved.token))),
        (None, None) => (DEFAULT_SERVER.to_owned(), args.token.clone()),
    }
}

impl ClientArgs {
    /// A client for the server these arguments (or the saved login) name.
    pub fn client(&self) -> Result<Client> {
        let (server, token) = resolve(self, saved()?);
        Client::new(&server, token, self.ca_cert.as_deref())
    }
}

/// `tasklens login URL`: checks the token against the server, then saves both.
pub async fn login(args: LoginArgs) -> Result<i32> {
    let token = match args.token {
        Some(token) => token,
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("Token for {}: ", args.url);
                std::io::stderr().flush()?;
            }
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_owned()
        }
    };
    if token.is_empty() {
        bail!("no token given: pass --token, set TASKLENS_TOKEN, or type it when asked");
    }
    let client = Client::new(&args.url, Some(token.clone()), args.ca_cert.as_deref())?;
    let me: serde_json::Value = client
        .get("/api/me")
        .await
        .context("the server did not accept this token; nothing was saved")?;
    let path =
        path().context("no home directory to save the login in (set HOME or XDG_CONFIG_HOME)")?;
    write_private(
        &path,
        &toml::to_string(&Saved {
            server: args.url.trim().trim_end_matches('/').to_owned(),
            token,
        })?,
    )?;
    eprintln!(
        "Logged in to {} as {} ({}); saved in {}.",
        args.url,
        me["name"].as_str().unwrap_or("?"),
        me["role"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(0)
}

/// `tasklens logout`: forgets the saved login.
pub fn logout() -> Result<i32> {
    let Some(path) = path() else { return Ok(0) };
    match std::fs::remove_file(&path) {
        Ok(()) => eprintln!("Removed {}.", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("Not logged in."),
        Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
    }
    Ok(0)
}

/// Writes `text` to `path` readable by the user alone, whole or not at all (a
/// temporary file renamed over it), in a directory only the user may enter.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    let dir = path.parent().context("the login file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let temporary = dir.join(".login.toml.new");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path).with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(server: Option<&str>, token: Option<&str>) -> ClientArgs {
        ClientArgs {
            server: server.map(str::to_owned),
            token: token.map(str::to_owned),
            ca_cert: None,
            output: None,
        }
    }

    #[test]
    fn a_saved_token_goes_only_to_its_own_server() {
        let saved = || {
            Some(Saved {
                server: "https://tl.example:8443".into(),
                token: "saved".into(),
            })
        };
        let resolved = |a: ClientArgs, s: Option<Saved>| resolve(&a, s);
        assert_eq!(
            resolved(args(None, None), saved()),
            ("https://tl.example:8443".into(), Some("saved".into()))
        );
        assert_eq!(
            resolved(args(Some("https://TL.example:8443/"), None), saved()),
            ("https://TL.example:8443/".into(), Some("saved".into()))
        );
        assert_eq!(
            resolved(args(Some("http://elsewhere:8080"), None), saved()),
            ("http://elsewhere:8080".into(), None),
            "never sent to another server"
        );
        assert_eq!(
            resolved(args(None, Some("given")), saved()),
            ("https://tl.example:8443".into(), Some("given".into()))
        );
        assert_eq!(
            resolved(args(None, None), None),
            (DEFAULT_SERVER.into(), None)
        );
    }
}
