//! Closed vocabularies: enums whose every value has exactly one name, the string it is stored,
//! hashed, shown and counted as. `as_str` gives it, `FromStr` reads it back; nothing else does.

/// A name outside a closed vocabulary (read from storage or asked by a client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {what}")]
pub struct Unknown {
    pub what: &'static str,
    pub value: String,
}

/// Declares a closed vocabulary: `vocabulary! { /// doc  pub enum Level("incident level") { Low => "low", ... } }`
/// gives the enum with `ALL` and `NAMES` (in declaration order), `as_str`, `Display` (the name,
/// never the variant), `FromStr` (`Unknown` for any other string) and `Serialize` (the name).
macro_rules! vocabulary {
    (
        $(#[$m:meta])*
        pub enum $name:ident($what:literal) {
            $($(#[$vm:meta])* $variant:ident => $s:literal,)+
        }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($s,)+];

            /// The name it is stored and shown as.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::vocabulary::Unknown;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err($crate::domain::vocabulary::Unknown {
                        what: $what,
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

pub(crate) use vocabulary;
