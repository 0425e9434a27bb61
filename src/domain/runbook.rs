//! The response steps of each incident kind: the guide's five (detection, containment,
//! investigation, remediation, recovery), made concrete for that kind: what the server contained
//! by itself, what to check, and which call or command undoes the containment. One exhaustive
//! `match` on `Kind`, so a new kind does not compile without its runbook. The API returns them on
//! an incident and the console shows them on its page.

use super::incident::Kind;
use super::vocabulary::vocabulary;

vocabulary! {
    /// A step of the guide's incident response, in its order.
    pub enum Phase("runbook step") {
        Detection => "detection",
        Containment => "containment",
        Investigation => "investigation",
        Remediation => "remediation",
        Recovery => "recovery",
    }
}

/// One step of a runbook: its phase and what to do in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub phase: Phase,
    pub text: &'static str,
}

/// The recovery step every detector's runbook ends with, after its own undo.
macro_rules! resolve {
    ($undo:literal) => {
        concat!(
            $undo,
            " Then resolve the incident with a note (PATCH /api/v1/incidents/{id} {\"status\": \"resolved\", \"note\": ...}): ",
            "the same detector firing for the same subject within IMANGOR_INCIDENT_RECURRENCE_DAYS opens a recurrence, ",
            "linked to this incident and one level higher."
        )
    };
}

/// The five steps for an incident of `kind`, in the guide's order.
pub fn runbook(kind: Kind) -> [Step; 5] {
    let [detection, containment, investigation, remediation, recovery] = texts(kind);
    [
        Step {
            phase: Phase::Detection,
            text: detection,
        },
        Step {
            phase: Phase::Containment,
            text: containment,
        },
        Step {
            phase: Phase::Investigation,
            text: investigation,
        },
        Step {
            phase: Phase::Remediation,
            text: remediation,
        },
        Step {
            phase: Phase::Recovery,
            text: recovery,
        },
    ]
}

#[rustfmt::skip] // prose, one step a line
fn texts(kind: Kind) -> [&'static str; 5] {
    match kind {
        Kind::BruteForce => [
            "10 or more failed logins on one account (the subject, an account id) within 10 minutes, the logins the login guard refused counted with them; each further guess raises this incident's count.",
            "Automatic: the login guard slows the account and locks each (account, address) pair after IMANGOR_LOGIN_LOCK_AFTER failures; nothing else is contained. If a guess may have worked, end the account's sessions (POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT}, or imangor contain revoke-sessions --email EMAIL) and block the addresses (block_address, or imangor contain block CIDR).",
            "Read the incident's events (GET /api/v1/incidents/{id}, or GET /api/v1/audit): the addresses the failures came from, and whether an auth.login success for the account followed them (a guess that worked); imangor access-review shows its last login.",
            "If a guess may have worked: the owner changes the password (PATCH /api/v1/users/me with current_password, which ends every other session), or an admin disables the account (imangor user disable --email EMAIL).",
            resolve!("Undo: a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false} (admin); ended sessions are not restored (the owner signs in again); a block lapses at its end or is lifted with POST /api/v1/containment {\"action\": \"unblock_address\", \"cidr\": ...}."),
        ],
        Kind::CredentialStuffing => [
            "Failed logins on 10 or more different accounts from one address (the subject: an IPv4 address, or an IPv6 address's /64) within 10 minutes; each further attempt raises the count.",
            "Automatic: the address (an IPv4 /32, an IPv6 /64) is refused at the door for IMANGOR_CONTAIN_STUFFING_BLOCK seconds (900; 0 = no block), recorded as containment.block_address. Block longer or wider with POST /api/v1/containment {\"action\": \"block_address\", \"cidr\": ..., \"seconds\": ...} or imangor contain block CIDR --seconds N.",
            "Read the incident's events: the accounts tried from the address, and any auth.login success from it (an account whose password was on the attacker's list); check whether the address is a shared proxy or NAT (other users behind it are refused too).",
            "For each account that signed in from the address: end its sessions (revoke_sessions) and have the owner change the password; tell the owners of the accounts tried.",
            resolve!("Undo: the block lapses at its end (blocked_until; a longer block of the same network wins), or lift it now: POST /api/v1/containment {\"action\": \"unblock_address\", \"cidr\": ...} (the exact network of the block)."),
        ],
        Kind::RefreshReuse => [
            "A refresh token already spent (rotated) was presented again: two holders of one session's token, one of them a thief. The subject is the account whose session it was.",
            "Automatic: that session was revoked (reason refresh token reuse); with IMANGOR_CONTAIN_REFRESH_REUSE=all every session of the account was (containment.revoke_sessions). Otherwise end the others with POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT} or imangor contain revoke-sessions --email EMAIL.",
            "Read the incident's events: the addresses of the session's refreshes and of the replay (auth.refresh, auth.refresh_reuse), and what the account did with the session meanwhile (GET /api/v1/audit for its actor id).",
            "Find how the token left the client (a stolen device, a leaking log or proxy); the owner changes the password (ends every other session); disable the account (disable_user) if the thief may still hold its password.",
            resolve!("Undo: revoked sessions are not restored (the owner signs in again); a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false} (admin)."),
        ],
        Kind::TotpGuessing => [
            "10 or more wrong second-factor codes (TOTP or recovery codes) on one account (the subject, an account id) within 10 minutes. Each attempt needed the right password: treat the password as known to an attacker.",
            "Automatic: each code went through the account's login guard (locks per account and address after IMANGOR_LOGIN_LOCK_AFTER failures, slows the account), and an mfa_token ends after 5 attempts; nothing else is contained. End the account's sessions with POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT} if one may be the attacker's.",
            "Read the incident's events (mfa.verify failures, the auth.login second_factor_required events before them): the addresses, and whether an auth.login success with a second factor followed (a guess that worked) or a recovery code was used (mfa.recovery_use).",
            "The owner changes the password at once (PATCH /api/v1/users/me with current_password; it ends every other session) and checks their authenticator; if a code may have worked, disable the account (imangor user disable --email EMAIL) until the owner is reached, then have them remove and enrol TOTP again.",
            resolve!("Undo: a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false} (admin); ended sessions are not restored."),
        ],
        Kind::RecoveryCodeNewAddress => [
            "A recovery code completed a sign-in (after the right password) from an address the account never signed in from (the login guard's known addresses: 90 days, 8 per account); the subject is the account id. The owner may have lost their authenticator, or someone holds the password and a code.",
            "Nothing is contained automatically (the sign-in succeeded; the code is spent). If the owner did not do it: end the account's sessions with POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT} or imangor contain revoke-sessions --email EMAIL, or disable it (disable_user).",
            "Read the incident's events (mfa.recovery_use, the auth.login success and second_factor_required events around it): the address and when; ask the owner through a channel other than this account whether they used a recovery code.",
            "If the owner did not: they change the password at once (it ends every other session), regenerate the recovery codes (POST /api/v1/users/me/mfa/recovery-codes) and check their authenticator; if they did (a lost phone): they remove and enrol TOTP again on a new device.",
            resolve!("Undo: ended sessions are not restored (the owner signs in again); a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false} (admin)."),
        ],
        Kind::CodeReuse => [
            "An OAuth authorization code already redeemed was presented again: the code leaked (a redirect URI or log that exposes it, a stolen browser history) and two parties hold it. The subject is the account the code was issued for; the event names the client that presented it.",
            "Automatic: the session the code's first redemption started was ended (its access and refresh tokens stop at once). Otherwise end the account's other sessions with POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT}.",
            "Read the incident's events (oauth.authorize, oauth.token, oauth.code_reuse): the client, the addresses of both redemptions, and what the first session did meanwhile (GET /api/v1/audit for the account's actor id); check the client's registered redirect URIs (GET /api/v1/clients).",
            "Find where the code leaked: a redirect URI on a host the client does not control, a page that logs or forwards its query; fix or remove it (DELETE /api/v1/clients/{client_id} ends every token issued to the client); the owner signs in again.",
            resolve!("Undo: ended sessions are not restored (the owner signs in again); a deleted client is registered again with POST /api/v1/clients (a new id and secret)."),
        ],
        Kind::AuthzProbing => [
            "20 or more refusals of the authorization policy for one account (the subject) within 10 minutes: someone trying ids or routes it may not use.",
            "Nothing is contained automatically (every request was refused). To stop it: POST /api/v1/containment {\"action\": \"revoke_sessions\", \"user_id\": SUBJECT}, or {\"action\": \"disable_user\", \"user_id\": SUBJECT}.",
            "Read the incident's events (authz.denied: which routes and ids were tried, from which addresses); check that nothing the account reached was another's (its successful requests in GET /api/v1/audit), and whether a client bug rather than a person explains it.",
            "A person probing: keep the account disabled and review what it owns; a broken client: fix it. If a refusal should have been an answer, the policy (docs/authorization.md) is what changes.",
            resolve!("Undo: a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false} (admin); ended sessions are not restored."),
        ],
        Kind::ForgedTokens => [
            "50 or more access tokens that failed verification from one address (the subject; an IPv6 address's /64) within a minute: forged, tampered or guessed tokens.",
            "Nothing is contained automatically (every token was refused with 401). To stop the noise: POST /api/v1/containment {\"action\": \"block_address\", \"cidr\": SUBJECT, \"seconds\": ...} or imangor contain block CIDR --seconds N.",
            "Read the incident's events (auth.token_invalid: why each failed: signature, algorithm, expiry, issuer); a run of expired tokens is a broken client, bad signatures are an attacker. If any signing key may have leaked, check imangor keys status.",
            "If a signing key may have leaked: imangor keys rotate-signing, roll the keyring out, then remove the leaked key from the keyring by hand and roll out again (its tokens fail at once; imangor keys retire would wait for them to expire); otherwise fix or block the client.",
            resolve!("Undo: a block lapses at its end, or is lifted with unblock_address (POST /api/v1/containment)."),
        ],
        Kind::RoleEscalation => [
            "An account (the subject) was made admin; the description names who did it. Expected promotions are incidents too: each is reviewed.",
            "Nothing is contained automatically. If the change was not expected: demote it (PATCH /api/v1/users/{id} {\"role\": \"user\"} or imangor user set-role --email EMAIL --role user) and end its sessions (revoke_sessions); consider the account that promoted it compromised too.",
            "Read the events around the change: who made it (user.role_change, its actor), from which address, and what the new admin did since (GET /api/v1/audit for its actor id); imangor access-review lists every admin.",
            "If unexpected: disable the account that made the change (disable_user) until its owner is reached, have both owners change their passwords, and undo whatever the new admin changed.",
            resolve!("Undo: a demotion is reversed with PATCH /api/v1/users/{id} {\"role\": \"admin\"} or imangor user set-role --email EMAIL --role admin; a disabled account is enabled with PATCH /api/v1/users/{id} {\"disabled\": false}."),
        ],
        Kind::SharedStateUnavailable => [
            "Redis (IMANGOR_REDIS_URL, the replicas' shared state) stopped answering.",
            "Automatic: each replica falls back to its own rate limits and login counters (a client gets up to N replicas times its limit) and reads revocations and blocks from the database; no request waits for Redis. Nothing to undo.",
            "Check Redis itself (its process, memory, network, password) and the readiness of each replica on the metrics listener (GET /readyz: shared_state up or down); the audit trail shows shared_state.restored when it answers again.",
            "Bring Redis back or point IMANGOR_REDIS_URL at a working one; if an attacker may have caused the outage, review what the raised per-replica limits let through meanwhile (auth.login failures in GET /api/v1/audit).",
            resolve!("Once shared_state.restored is recorded and every replica says up, nothing is left to undo."),
        ],
        Kind::DataIntegrity => [
            "A stored secret (the subject, secret:ID) failed to open: its key is missing from IMANGOR_DATA_KEYS, or its ciphertext was changed (authentication failed).",
            "Nothing is contained automatically: the secret is refused (500) to its owner and to everyone else; no plaintext leaves the server.",
            "Run imangor keys status: a key id with rows but not in the keyring is a lost key (a deployment with an old keyring); otherwise the row was edited in the database: check who could write it, and run imangor audit verify.",
            "A missing key: put it back into IMANGOR_DATA_KEYS on every replica (never drop a key with rows: imangor keys retire refuses it). An edited row: restore it from a backup; treat database write access as compromised.",
            resolve!("Once GET /api/v1/secrets/{id} answers its owner again, nothing is left to undo."),
        ],
        Kind::AuditTampering => [
            "The audit chain check (the sealer, a server's periodic walk) found a row edited, removed or reordered, a tail rewritten, or a checkpoint or the signed head forged or removed.",
            "Automatic: the server signs nothing more over that chain (no checkpoint, no signed head) until it restarts; it still seals, so detection, containment and alerts go on.",
            "Run imangor audit verify for the first problem (its seq and kind); compare the rows with the checkpoints your SIEM kept (the audit log target) and the export; find who had write access to the database.",
            "Restore the trail from a backup and the SIEM's copy, rotate the database credentials, and rotate the data keyring if a data key may have leaked (imangor keys add, roll out, imangor keys reencrypt, imangor keys retire OLD_ID).",
            resolve!("Undo: restart the servers once imangor audit verify passes; signing resumes."),
        ],
        Kind::UserReport => [
            "A person reported it (POST /api/v1/incidents); a plain user's report above medium waits for triage at medium, the level asked kept as requested_level.",
            "Nothing is contained automatically. Triage: set its level and affected systems (PATCH /api/v1/incidents/{id} {\"status\": \"open\", \"note\": ..., \"level\": ...}), and contain what it describes with POST /api/v1/containment or imangor contain.",
            "Ask the reporter for details; read the events of the accounts and addresses it names (GET /api/v1/audit).",
            "Fix what the report found, or note why it is not a security problem.",
            "Undo any containment you applied (PATCH /api/v1/users/{id} {\"disabled\": false}; a block lapses at its end), then resolve with a note. Reports are never recurrences: each is its own incident.",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_five_steps_in_order_each_with_text() {
        for kind in Kind::ALL {
            let steps = runbook(*kind);
            assert_eq!(
                steps.iter().map(|s| s.phase).collect::<Vec<_>>(),
                Phase::ALL,
                "{kind}"
            );
            assert!(steps.iter().all(|s| s.text.len() > 40), "{kind}");
        }
        assert_eq!(
            Phase::NAMES,
            [
                "detection",
                "containment",
                "investigation",
                "remediation",
                "recovery"
            ]
        );
    }
}
