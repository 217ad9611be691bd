//! Remote URLs as git-coord shows them: with the password of their userinfo redacted, the way
//! git 2.47 redacts it in its own messages (`transfer.credentialsInUrl`:
//! `https://user:<redacted>@host/repo.git`). Only git itself is handed the URL as given.

use std::borrow::Cow;
use std::fmt;

/// What replaces a password, as git writes it.
pub const REDACTED: &str = "<redacted>";

/// A remote as given to git: a configured remote's name, a URL or a path. Everything that shows
/// or stores it (`Display`, `Debug`, `Serialize`) sees it with its password redacted; only
/// [`RemoteUrl::as_git_arg`], for the command line of `git` itself, gives the URL as it was given.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl(String);

impl RemoteUrl {
    pub fn new(given: impl Into<String>) -> RemoteUrl {
        RemoteUrl(given.into())
    }

    /// The URL as given, credentials and all: for git's own command line, never for display.
    pub fn as_git_arg(&self) -> &str {
        &self.0
    }

    /// The URL as shown: its password redacted.
    pub fn redacted(&self) -> Cow<'_, str> {
        redact_url(&self.0)
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteUrl({:?})", self.redacted())
    }
}

impl serde::Serialize for RemoteUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// `url` with the password of its userinfo redacted: `scheme://user:PASS@host/path` becomes
/// `scheme://user:<redacted>@host/path` (any scheme: https, http, ssh, git, file). The user stays,
/// as git keeps it; a URL without a password, a scp-like `user@host:path` (which has no password)
/// and a path come back unchanged.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    redact_urls(url)
}

/// `text` with the password of every `scheme://user:PASS@host` in it redacted: for what git
/// prints, which may quote a URL ("unable to access '...'").
pub fn redact_urls(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut done = 0; // bytes of `text` already copied to `out`
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        // The authority ends where the path, query or fragment starts, or where the URL does.
        let end = text[start..]
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '`' | '<' | '>') || c.is_whitespace()
            })
            .map_or(text.len(), |n| start + n);
        let authority = &text[start..end];
        // The last `@`: a password with an unescaped `@` is redacted whole.
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
        {
            out.push_str(&text[done..start + colon + 1]);
            out.push_str(REDACTED);
            done = start + at;
        }
        from = end.max(start);
    }
    if done == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_as_git_redacts_them() {
        for (given, shown) in [
            (
                "https://user:s3cret@example.com/team/lib.git",
                "https://user:<redacted>@example.com/team/lib.git",
            ),
            (
                "http://user:s3cret@127.0.0.1:8080/lib.git",
                "http://user:<redacted>@127.0.0.1:8080/lib.git",
            ),
            (
                "ssh://git:s3cret@example.com:22/lib",
                "ssh://git:<redacted>@example.com:22/lib",
            ),
            (
                "https://:tok3n@example.com",
                "https://:<redacted>@example.com",
            ),
            (
                "https://user:p@ss@example.com/lib",
                "https://user:<redacted>@example.com/lib",
            ),
            (
                "file://me:s3cret@/srv/lib.git",
                "file://me:<redacted>@/srv/lib.git",
            ),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
            assert_eq!(RemoteUrl::new(given).to_string(), shown);
            assert_eq!(
                serde_json::to_string(&RemoteUrl::new(given)).unwrap(),
                format!("\"{shown}\"")
            );
            assert!(!format!("{:?}", RemoteUrl::new(given)).contains("s3cret"));
            assert_eq!(RemoteUrl::new(given).as_git_arg(), given);
        }
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for url in [
            "git@example.com:team/lib.git",
            "ssh://git@example.com/team/lib",
            "https://user@example.com/team/lib.git",
            "https://example.com/a@b/lib.git",
            "git://127.0.0.1:9418/lib.git",
            "/srv/git/lib.git",
            "origin",
            "",
        ] {
            assert!(
                matches!(redact_url(url), Cow::Borrowed(u) if u == url),
                "{url}"
            );
        }
    }

    #[test]
    fn every_url_in_git_s_words_is_redacted() {
        let said = "fatal: unable to access 'https://u:s3cret@h/x.git/': no\n\
                    error: failed to push some refs to 'ssh://v:s3cret@k/y' (see https://u@h/z)";
        assert_eq!(
            redact_urls(said),
            "fatal: unable to access 'https://u:<redacted>@h/x.git/': no\n\
             error: failed to push some refs to 'ssh://v:<redacted>@k/y' (see https://u@h/z)"
        );
    }
}
