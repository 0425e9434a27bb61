//! Pure types and rules, no I/O. Each type can only hold a valid value: parse, don't validate.

pub mod audit;
pub mod client;
pub mod email;
pub mod full_name;
pub mod ids;
pub mod incident;
pub mod key;
pub mod net;
pub mod password;
pub mod quota;
pub mod resource;
pub mod role;
pub mod runbook;
pub mod secret;
pub mod sign_in;
pub mod text;
pub mod time;
pub mod user;
pub mod validation;
pub mod vocabulary;

pub use email::Email;
pub use full_name::FullName;
pub use ids::{ClientId, ResourceId, SecretId, SessionId, UserId};
pub use password::{Password, PasswordPolicy};
pub use quota::{LoginPolicy, Quota};
pub use resource::{Content, Resource, ResourceFields, Title};
pub use role::Role;
pub use secret::{SecretEntry, SecretName, SecretValue};
pub use sign_in::SignInMethod;
pub use time::Timestamp;
pub use user::User;
pub use validation::{FieldError, ValidationError};
