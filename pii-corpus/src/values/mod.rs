//! Generators of valid sensitive values, one module per family. Every
//! value is valid by the rules its type is defined by (Luhn, mod-97, SSN
//! issuance rules, registered prefixes), and written in one of the forms
//! people and programs actually use.

pub mod finance;
pub mod net;
pub mod personal;
pub mod secrets;

pub use finance::{card, iban, ssn, ssn_bare};
pub use net::{ipv4, ipv6};
pub use personal::{email, first_name, last_name, phone};
pub use secrets::{aws_key_id, aws_secret, bearer_credential, jwt, pem_key, token};
