//! The fixed texts the demo upstream answers with.
//!
//! They are constants so that tests on the far side of the filter can state
//! exactly what the model "said" and check what was scrubbed from it. The
//! PII in them is fictitious: reserved example domains, a 555 phone number,
//! a well-known test card number and the IBAN from the IBAN standard.

/// The assistant's answer to every chat completion, full of PII.
pub const CHAT_REPLY: &str =
    "Sure. Contact Jane Doe at jane.doe@example.com or +1 415-555-0132; card 4111 1111 1111 1111.";

/// [`CHAT_REPLY`] cut into the deltas of a streamed answer.
///
/// The e-mail address is deliberately split over three events (and the phone
/// and card numbers over two each) so that a scrubber which only looks at one
/// event at a time lets the PII through. Concatenated, the fragments are
/// exactly [`CHAT_REPLY`].
pub const CHAT_STREAM_FRAGMENTS: &[&str] = &[
    "Sure. ",
    "Contact Jane ",
    "Doe at ",
    "jane.d",
    "oe@exam",
    "ple.com",
    " or +1 ",
    "415-555-",
    "0132; card ",
    "4111 1111 ",
    "1111 1111.",
];

/// The e-mail address inside [`CHAT_REPLY`] and [`SEARCH_CUSTOMERS_TEXT`].
pub const DEMO_EMAIL: &str = "jane.doe@example.com";

/// The phone number inside [`CHAT_REPLY`].
pub const DEMO_PHONE: &str = "+1 415-555-0132";

/// The (test) card number inside [`CHAT_REPLY`].
pub const DEMO_CARD: &str = "4111 1111 1111 1111";

/// The phone number inside [`SEARCH_CUSTOMERS_TEXT`].
pub const DEMO_CUSTOMER_PHONE: &str = "+49 30 901820";

/// The IBAN inside [`SEARCH_CUSTOMERS_TEXT`].
pub const DEMO_IBAN: &str = "DE89 3704 0044 0532 0130 00";

/// What the MCP tool `search_customers` returns: a customer record with an
/// e-mail address, a phone number and an IBAN.
pub const SEARCH_CUSTOMERS_TEXT: &str = "Found 1 customer: Jane Doe <jane.doe@example.com>, phone +49 30 901820, IBAN DE89 3704 0044 0532 0130 00.";

/// What the MCP tool `get_weather` returns: nothing worth scrubbing, so tests
/// can show that clean answers pass unchanged.
pub const WEATHER_TEXT: &str = "Sunny, 21 degrees Celsius, light wind from the west.";

/// What the MCP tool `delete_customer` returns; its interest is in whether
/// the policy lets the call through at all.
pub const DELETE_CUSTOMER_TEXT: &str = "deleted";

/// The name this server gives in MCP `serverInfo`, so a test can tell it
/// reached the real upstream rather than a response made up by the filter.
pub const SERVER_NAME: &str = "mcp-guard-demo-upstream";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_concatenate_to_the_reply() {
        assert_eq!(CHAT_STREAM_FRAGMENTS.concat(), CHAT_REPLY);
    }

    #[test]
    fn the_email_is_split_across_fragments() {
        assert!(CHAT_STREAM_FRAGMENTS
            .iter()
            .all(|f| !f.contains(DEMO_EMAIL)));
        assert!(CHAT_REPLY.contains(DEMO_EMAIL));
        assert!(CHAT_REPLY.contains(DEMO_PHONE));
        assert!(CHAT_REPLY.contains(DEMO_CARD));
    }

    #[test]
    fn search_result_carries_the_pii() {
        for needle in [DEMO_EMAIL, DEMO_CUSTOMER_PHONE, DEMO_IBAN] {
            assert!(SEARCH_CUSTOMERS_TEXT.contains(needle), "{needle}");
        }
    }
}
