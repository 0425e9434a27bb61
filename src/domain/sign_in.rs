//! How a user signed in: what a session remembers and its tokens' `amr` say (RFC 8176).

/// The ways to sign in. Every one but the password alone counts as multi-factor: a passkey is
/// only accepted alone with user verification (something held, plus a PIN or a biometric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    /// A password, then a TOTP or a recovery code.
    PasswordAndCode,
    /// A password, then a passkey.
    PasswordAndPasskey,
    /// A passkey with user verification, alone.
    Passkey,
}

impl SignInMethod {
    /// A second factor was passed (sensitive operations ask for it).
    pub fn is_mfa(self) -> bool {
        !matches!(self, SignInMethod::Password)
    }

    /// The tokens' `amr` (RFC 8176 §2: `pwd` a password, `hwk` a proof of possession of a
    /// key held by an authenticator, `mfa` more than one factor).
    pub fn amr(self) -> &'static [&'static str] {
        match self {
            SignInMethod::Password => &["pwd"],
            SignInMethod::PasswordAndCode => &["pwd", "mfa"],
            SignInMethod::PasswordAndPasskey => &["pwd", "hwk", "mfa"],
            SignInMethod::Passkey => &["hwk", "mfa"],
        }
    }

    /// How it is stored: a flag for a second factor and, for a passkey, a word (the columns
    /// `mfa` and `amr` of sessions, codes and consent tickets; rows of earlier versions hold
    /// only the flag).
    pub fn stored(self) -> (bool, Option<&'static str>) {
        match self {
            SignInMethod::Password => (false, None),
            SignInMethod::PasswordAndCode => (true, None),
            SignInMethod::PasswordAndPasskey => (true, Some("pwd+passkey")),
            SignInMethod::Passkey => (true, Some("passkey")),
        }
    }

    /// Back from the stored columns; an unknown word falls back to what the flag says.
    pub fn from_stored(mfa: bool, amr: Option<&str>) -> Self {
        match (mfa, amr) {
            (true, Some("passkey")) => SignInMethod::Passkey,
            (true, Some("pwd+passkey")) => SignInMethod::PasswordAndPasskey,
            (true, _) => SignInMethod::PasswordAndCode,
            (false, _) => SignInMethod::Password,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SignInMethod::{self, *};

    #[test]
    fn every_method_survives_its_storage_and_only_the_password_alone_is_single_factor() {
        for m in [Password, PasswordAndCode, PasswordAndPasskey, Passkey] {
            let (mfa, amr) = m.stored();
            assert_eq!(SignInMethod::from_stored(mfa, amr), m);
            assert_eq!(m.is_mfa(), m.amr().contains(&"mfa"));
            assert_eq!(m.is_mfa(), m != Password);
        }
        // A word without the flag never claims a second factor.
        assert_eq!(SignInMethod::from_stored(false, Some("passkey")), Password);
    }
}
