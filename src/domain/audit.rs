//! The closed vocabulary of security events: what happened (`Action`) and how it ended
//! (`Outcome`). The names are hashed into the audit chain: changing one breaks the verification
//! of every trail that holds it, so a name, once used, is never changed.

use super::vocabulary::vocabulary;

vocabulary! {
    /// What a security event records.
    pub enum Action("audit action") {
        /// An old stack's access token was accepted (`IMANGOR_LEGACY_JWT_SECRET`).
        AuthLegacyToken => "auth.legacy_token",
        AuthLogin => "auth.login",
        AuthRefresh => "auth.refresh",
        AuthRefreshReuse => "auth.refresh_reuse",
        AuthRevoke => "auth.revoke",
        AuthTokenInvalid => "auth.token_invalid",
        AuthzDenied => "authz.denied",
        /// An OAuth client registered, its secret rotated, or deleted (with its tokens).
        ClientCreate => "client.create",
        ClientDelete => "client.delete",
        ClientRotateSecret => "client.rotate_secret",
        ContainmentBlockAddress => "containment.block_address",
        ContainmentRevokeSessions => "containment.revoke_sessions",
        /// A block lifted before its end (the drill lifts the blocks its traffic set off).
        ContainmentUnblockAddress => "containment.unblock_address",
        /// An import from a deployment of the guide's Python stack (`imangor import`).
        ImportRun => "import.run",
        /// An incident's evidence bundle exported (`imangor incident evidence`, the API).
        IncidentEvidence => "incident.evidence",
        IncidentOpen => "incident.open",
        IncidentReport => "incident.report",
        IncidentUpdate => "incident.update",
        KeysAdd => "keys.add",
        /// Second factors: a TOTP enrolment started or confirmed, removed; recovery codes
        /// regenerated or used; a second factor checked at sign-in.
        /// A passkey registered or removed (WebAuthn).
        MfaPasskeyRegister => "mfa.passkey_register",
        MfaPasskeyRemove => "mfa.passkey_remove",
        MfaRecoveryCodes => "mfa.recovery_codes",
        MfaRecoveryUse => "mfa.recovery_use",
        MfaTotpEnroll => "mfa.totp_enroll",
        MfaTotpRemove => "mfa.totp_remove",
        MfaVerify => "mfa.verify",
        /// The authorization endpoint: a code issued after sign-in (and consent), a refusal.
        OAuthAuthorize => "oauth.authorize",
        /// A client failed to authenticate at the token or introspection endpoint.
        OAuthClientAuth => "oauth.client_auth",
        /// A spent authorization code presented again: what its first use issued is revoked.
        OAuthCodeReuse => "oauth.code_reuse",
        /// A client's grant at the token endpoint (code, client credentials), issued or refused.
        OAuthToken => "oauth.token",
        KeysPromote => "keys.promote",
        KeysReencrypt => "keys.reencrypt",
        KeysRetire => "keys.retire",
        KeysRotateSigning => "keys.rotate_signing",
        ResourceDelete => "resource.delete",
        ResourceUpdate => "resource.update",
        SecretCreate => "secret.create",
        SecretDecrypt => "secret.decrypt",
        SecretDelete => "secret.delete",
        SecretRead => "secret.read",
        SecretReseal => "secret.reseal",
        ServerStart => "server.start",
        SharedStateRestored => "shared_state.restored",
        SharedStateUnavailable => "shared_state.unavailable",
        UserBootstrapAdmin => "user.bootstrap_admin",
        UserCreate => "user.create",
        UserDisable => "user.disable",
        UserEnable => "user.enable",
        UserPasswordChange => "user.password_change",
        UserRegister => "user.register",
        UserRoleChange => "user.role_change",
    }
}

vocabulary! {
    /// How a recorded action ended.
    pub enum Outcome("audit outcome") {
        Success => "success",
        Failure => "failure",
        /// Refused by a rate limit or the login guard before it was tried.
        Throttled => "throttled",
        /// Refused by the policy, the object shown to exist (403).
        Denied => "denied",
        /// Refused by the policy, the object hidden (404).
        Hidden => "hidden",
        /// A session ended because of what was presented (a reused refresh token, a revocation).
        SessionRevoked => "session_revoked",
        /// An access token revoked: its id is refused until it expires.
        AccessTokenDenied => "access_token_denied",
        /// A right password of an account with a second factor: the sign-in waits for it.
        SecondFactorRequired => "second_factor_required",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_none_is_used_twice() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
        }
        let mut names = Action::NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        assert!("auth.Login".parse::<Action>().is_err());
        assert_eq!(Outcome::SessionRevoked.to_string(), "session_revoked");
    }
}
