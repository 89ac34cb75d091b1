//! Test guest: answers with a context that is not a JSON object (the SDK
//! never does this, so this guest uses the raw bindings).

wit_bindgen::generate!({
    path: "../../../wit",
    world: "ward:policy/policy@0.1.0",
    generate_all,
});

struct Malformed;

impl Guest for Malformed {
    fn evaluate(request: Request) -> Result<Decision, String> {
        Ok(Decision {
            allow: true,
            reasons: Vec::new(),
            context: match request.action.name.as_str() {
                "array" => String::from("[1, 2, 3]"),
                _ => String::from("{not json"),
            },
        })
    }
}

export!(Malformed);
