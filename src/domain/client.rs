//! OAuth clients (RFC 6749 §2) and the scopes a token may carry: who may ask for tokens, how,
//! where the answer may be sent, and how far a token is narrowed below its user's role.

use super::validation::ValidationError;
use super::vocabulary::vocabulary;
use super::{ClientId, Timestamp};

vocabulary! {
    /// RFC 6749 §2.1: a confidential client holds a secret, a public one (a single-page or a
    /// native app) cannot keep one.
    pub enum ClientKind("client type") {
        Public => "public",
        Confidential => "confidential",
    }
}

vocabulary! {
    /// The grants a client may be allowed (the password grant is not a client's: it stays the
    /// first-party flow of the guide, switched by `IMANGOR_PASSWORD_GRANT`).
    pub enum GrantType("grant type") {
        AuthorizationCode => "authorization_code",
        ClientCredentials => "client_credentials",
        RefreshToken => "refresh_token",
    }
}

vocabulary! {
    /// What a token may be used for. A scope narrows the holder's role and never widens it:
    /// the policy table decides on both (`authz::policy::Action::scope`).
    pub enum Scope("scope") {
        ResourcesRead => "resources:read",
        ResourcesWrite => "resources:write",
        SecretsRead => "secrets:read",
        SecretsWrite => "secrets:write",
        /// The caller's own account: reading and changing the profile.
        Profile => "profile",
        /// Incidents: reporting one and, for the roles that may, triage and containment.
        Incidents => "incidents",
        /// The administrative actions: accounts, the audit trail, the access review.
        Admin => "admin",
    }
}

/// A set of scopes, kept in declaration order: written space-separated (RFC 6749 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u16);

impl Scopes {
    pub const fn empty() -> Self {
        Scopes(0)
    }

    /// Every scope: what a password-grant token's role is not narrowed by.
    pub fn all() -> Self {
        Scope::ALL.iter().copied().collect()
    }

    /// The scopes a client gets when it is registered without naming any: its users' data,
    /// not the administrative actions.
    pub fn default_for_clients() -> Self {
        [
            Scope::ResourcesRead,
            Scope::ResourcesWrite,
            Scope::SecretsRead,
            Scope::SecretsWrite,
            Scope::Profile,
        ]
        .into_iter()
        .collect()
    }

    fn bit(s: Scope) -> u16 {
        let i = Scope::ALL.iter().position(|x| *x == s).unwrap_or(0);
        1 << i
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & Self::bit(s) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn intersect(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    pub fn is_subset_of(self, other: Scopes) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// A space-separated list (`scope` of RFC 6749 §3.3): every name must be known, and the
    /// list may not be empty; repeats are allowed and count once.
    pub fn parse(list: &str) -> Result<Scopes, String> {
        let mut out = Scopes::empty();
        for name in list.split(' ').filter(|n| !n.is_empty()) {
            let s: Scope = name
                .parse()
                .map_err(|_| format!("unknown scope {:?}", truncate(name)))?;
            out.0 |= Self::bit(s);
        }
        if out.is_empty() {
            return Err("no scope named".into());
        }
        Ok(out)
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(it: I) -> Self {
        let mut out = Scopes::empty();
        for s in it {
            out.0 |= Self::bit(s);
        }
        out
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in self.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s.as_str())?;
            first = false;
        }
        Ok(())
    }
}

fn truncate(s: &str) -> &str {
    &s[..s.floor_char_boundary(40)]
}

/// The longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LEN: usize = 512;

/// A registered redirect URI (RFC 8252, RFC 9700 §2.1): `https` with a host; `http` only on a
/// loopback address literal (`127.0.0.1` or `[::1]`, where any port matches, RFC 8252 §7.3);
/// or a private-use scheme named like a reversed domain (`com.example.app:/cb`, RFC 8252
/// §7.1). No fragment, no user info. Compared exactly, as a string, except the loopback port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(url::Url);

impl RedirectUri {
    pub fn parse(s: &str) -> Result<RedirectUri, String> {
        if s.len() > MAX_REDIRECT_URI_LEN {
            return Err(format!("longer than {MAX_REDIRECT_URI_LEN} characters"));
        }
        let u = url::Url::parse(s).map_err(|_| "not an absolute URI".to_owned())?;
        // The parser normalises (case of the scheme and host, default ports, dot segments): the
        // registered string must already be in that form, so that exact comparison is exact.
        if u.as_str() != s {
            return Err(format!(
                "not in normal form (it reads as {:?})",
                truncate(u.as_str())
            ));
        }
        if u.fragment().is_some() {
            return Err("a redirect URI may not have a fragment".into());
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err("a redirect URI may not hold user information".into());
        }
        match u.scheme() {
            "https" if u.host().is_some() => {}
            "http" if is_loopback(&u) => {}
            "http" => {
                return Err(
                    "http is only for a loopback address literal (127.0.0.1 or [::1])".into(),
                );
            }
            scheme if scheme.contains('.') && u.host().is_none() => {}
            _ => {
                return Err(
                    "the scheme must be https, http on a loopback address, or a private-use scheme like com.example.app"
                        .into(),
                );
            }
        }
        Ok(RedirectUri(u))
    }

    /// The server's own console page, `{IMANGOR_PUBLIC_URL}/console` (and a stored row, which
    /// went through `parse` or this on its way in): what `parse` accepts, and also plain `http`
    /// on the name `localhost`, the development origin passkeys need (browsers refuse an IP
    /// address as WebAuthn relying party id). RFC 8252 §8.3 advises apps against `localhost` for
    /// their own listeners; here it is the operator's public URL, the origin the browser shows
    /// the console from, and client registrations still go through `parse`. No port freedom:
    /// compared exactly.
    pub fn parse_own(s: &str) -> Result<RedirectUri, String> {
        let refusal = match RedirectUri::parse(s) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        match url::Url::parse(s) {
            Ok(u)
                if u.as_str() == s
                    && u.scheme() == "http"
                    && u.host_str() == Some("localhost")
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                Ok(RedirectUri(u))
            }
            _ => Err(refusal),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// True when `presented` is this URI: the same string, or for a loopback `http` URI, the
    /// same but for the port (native apps listen on an ephemeral port, RFC 8252 §7.3).
    pub fn matches(&self, presented: &str) -> bool {
        if self.0.as_str() == presented {
            return true;
        }
        if !is_loopback(&self.0) {
            return false;
        }
        let Ok(mut p) = url::Url::parse(presented) else {
            return false;
        };
        if p.as_str() != presented || !is_loopback(&p) || p.set_port(self.0.port()).is_err() {
            return false;
        }
        p == self.0
    }

    /// This URI with the query parameters of an answer appended (RFC 6749 §4.1.2).
    pub fn with_params(presented: &str, params: &[(&str, &str)]) -> String {
        match url::Url::parse(presented) {
            Ok(mut u) => {
                u.query_pairs_mut().extend_pairs(params);
                u.into()
            }
            Err(_) => presented.to_owned(),
        }
    }
}

fn is_loopback(u: &url::Url) -> bool {
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            _ => false,
        }
}

/// An OAuth client as stored.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
    /// Signs in without a consent screen (the console, the deployment's own apps).
    pub first_party: bool,
    pub created_at: Timestamp,
}

impl Client {
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registered redirect URI that `presented` matches.
    pub fn redirect_uri(&self, presented: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.matches(presented))
    }
}

/// The longest client name.
pub const MAX_CLIENT_NAME: usize = 100;
/// The most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 10;

/// A registration as asked, checked: what `POST /api/v1/clients` and `imangor client create` take.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Scopes,
    pub first_party: bool,
}

impl NewClient {
    /// Checks a registration: field by field, then together (a public client cannot use the
    /// client-credentials grant, having no secret; the code grant needs a redirect URI).
    pub fn parse(
        name: &str,
        kind: &str,
        redirect_uris: &[String],
        grant_types: Option<&[String]>,
        scopes: Option<&[String]>,
        first_party: bool,
    ) -> Result<NewClient, ValidationError> {
        let mut e = ValidationError::default();
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_CLIENT_NAME
            || name.chars().any(char::is_control)
        {
            e.push(
                "name",
                format!("1 to {MAX_CLIENT_NAME} characters, no control characters"),
            );
        }
        let kind = match kind.parse::<ClientKind>() {
            Ok(k) => Some(k),
            Err(_) => {
                e.push("type", "public or confidential");
                None
            }
        };
        if redirect_uris.len() > MAX_REDIRECT_URIS {
            e.push("redirect_uris", format!("at most {MAX_REDIRECT_URIS}"));
        }
        let mut uris = Vec::new();
        for (i, u) in redirect_uris.iter().enumerate() {
            match RedirectUri::parse(u) {
                Ok(r) if !uris.contains(&r) => uris.push(r),
                Ok(_) => e.push(format!("redirect_uris[{i}]"), "listed twice"),
                Err(m) => e.push(format!("redirect_uris[{i}]"), m),
            }
        }
        let mut grants = Vec::new();
        match grant_types {
            None => grants = vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            Some(list) => {
                for (i, g) in list.iter().enumerate() {
                    match g.parse::<GrantType>() {
                        Ok(g) if !grants.contains(&g) => grants.push(g),
                        Ok(_) => {}
                        Err(_) => e.push(
                            format!("grant_types[{i}]"),
                            format!("one of {}", GrantType::NAMES.join(", ")),
                        ),
                    }
                }
                if list.is_empty() {
                    e.push("grant_types", "at least one grant type");
                }
            }
        }
        let scopes = match scopes {
            None => Scopes::default_for_clients(),
            Some(list) => match Scopes::parse(&list.join(" ")) {
                Ok(s) if list.iter().all(|n| !n.is_empty() && !n.contains(' ')) => s,
                Ok(_) => {
                    e.push("scopes", "one scope name per entry");
                    Scopes::empty()
                }
                Err(m) => {
                    e.push("scopes", m);
                    Scopes::empty()
                }
            },
        };
        if grants.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            e.push(
                "redirect_uris",
                "the authorization_code grant needs a redirect URI",
            );
        }
        if kind == Some(ClientKind::Public) && grants.contains(&GrantType::ClientCredentials) {
            e.push(
                "grant_types",
                "a public client holds no secret: client_credentials needs a confidential client",
            );
        }
        if grants == [GrantType::RefreshToken] {
            e.push(
                "grant_types",
                "refresh_token alone issues nothing: add authorization_code",
            );
        }
        e.into_result()?;
        Ok(NewClient {
            name: name.to_owned(),
            kind: kind.unwrap_or(ClientKind::Public),
            redirect_uris: uris,
            grant_types: grants,
            scopes,
            first_party,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_private_use_schemes_rfc8252() {
        for ok in [
            "https://app.example.com/cb",
            "https://app.example.com:8443/cb?x=1",
            "http://127.0.0.1:5000/cb",
            "http://[::1]/cb",
            "com.example.app:/oauth",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "http://localhost:5000/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "HTTPS://App.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "/relative",
            "myapp:/cb",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_console_page_may_be_http_on_localhost_where_registrations_may_not() {
        let own = RedirectUri::parse_own("http://localhost:8000/console").unwrap();
        assert!(own.matches("http://localhost:8000/console"));
        assert!(
            !own.matches("http://localhost:8001/console"),
            "no port freedom"
        );
        assert!(!own.matches("http://127.0.0.1:8000/console"));
        assert!(RedirectUri::parse("http://localhost:8000/console").is_err());
        assert!(RedirectUri::parse_own("https://imangor.example.com/console").is_ok());
        assert!(RedirectUri::parse_own("http://127.0.0.1:8000/console").is_ok());
        for bad in [
            "http://imangor.example.com/console",
            "http://localhost.example.com/console",
            "http://LOCALHOST:8000/console",
            "http://user@localhost/console",
            "http://localhost/console#x",
        ] {
            assert!(RedirectUri::parse_own(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_redirect_uri_matches_exactly_but_for_the_loopback_port() {
        let https = RedirectUri::parse("https://app.example.com/cb").unwrap();
        assert!(https.matches("https://app.example.com/cb"));
        assert!(!https.matches("https://app.example.com/cb/"));
        assert!(!https.matches("https://app.example.com/cb?x=1"));
        assert!(!https.matches("https://app.example.com:444/cb"));
        let lo = RedirectUri::parse("http://127.0.0.1/cb").unwrap();
        assert!(lo.matches("http://127.0.0.1:49152/cb"));
        assert!(!lo.matches("http://127.0.0.1:49152/other"));
        assert!(!lo.matches("http://127.0.0.2:49152/cb"));
        assert!(!lo.matches("http://127.0.0.1:49152/cb#x"));
    }

    #[test]
    fn scopes_parse_space_separated_and_print_in_order() {
        let s = Scopes::parse("secrets:read  resources:read resources:read").unwrap();
        assert_eq!(s.to_string(), "resources:read secrets:read");
        assert!(Scopes::parse("resources:read root").is_err());
        assert!(Scopes::parse("").is_err());
        assert!(s.is_subset_of(Scopes::all()));
        assert!(!Scopes::all().is_subset_of(s));
        assert_eq!(Scopes::all().iter().count(), Scope::ALL.len());
    }

    #[test]
    fn a_public_client_cannot_hold_the_client_credentials_grant() {
        let e = NewClient::parse(
            "svc",
            "public",
            &[],
            Some(&["client_credentials".into()]),
            None,
            false,
        )
        .unwrap_err();
        assert!(e.errors.iter().any(|f| f.field == "grant_types"));
        let ok = NewClient::parse(
            "svc",
            "confidential",
            &[],
            Some(&["client_credentials".into()]),
            Some(&["resources:read".into()]),
            false,
        )
        .unwrap();
        assert_eq!(ok.scopes.to_string(), "resources:read");
    }
}
