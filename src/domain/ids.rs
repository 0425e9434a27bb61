//! Identifiers: random UUIDs (v7, so that new rows land at the end of an index), never reassigned.

use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
            pub fn from_uuid(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            /// Only the hyphenated form is an id: one spelling per id, so ids compare as strings in SQL.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 36 {
                    return Err(uuid::Uuid::parse_str("x").unwrap_err());
                }
                uuid::Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A user's id: the `sub` of their tokens.
    UserId
);
id_type!(
    /// A login session: one refresh-token family and the access tokens issued from it.
    SessionId
);

id_type!(
    /// A resource of the resources API.
    ResourceId
);
id_type!(
    /// A secret of the secrets API.
    SecretId
);
id_type!(
    /// An OAuth client (`client_id`). A confidential client allowed the client-credentials
    /// grant acts through a service account whose user id is the same UUID.
    ClientId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hyphenated_lowercase_form_parses_to_the_same_string() {
        let id = UserId::new();
        assert_eq!(id.to_string().parse::<UserId>().unwrap(), id);
        assert!(id.as_uuid().simple().to_string().parse::<UserId>().is_err());
        assert!("not-an-id".parse::<UserId>().is_err());
    }
}
