//! A request's invalid fields, each with a reason a client can show to a person: what every
//! parse in `domain` returns, and what `error::AppError::Validation` carries.

use std::fmt;

/// A field that failed validation, with a reason a client can show to a person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// One or more invalid fields of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::default();
        e.push(field, message);
        e
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Collects the error of a parse into this list and returns the value, if any.
    pub fn collect<T>(&mut self, r: Result<T, ValidationError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.extend(e.errors);
                None
            }
        }
    }

    /// `Ok(())` when no field failed.
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self.errors.iter().map(|e| e.field.as_str()).collect();
        write!(f, "invalid input: {}", fields.join(", "))
    }
}

impl std::error::Error for ValidationError {}
