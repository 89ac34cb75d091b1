//! Test guest: a policy that also imports an interface Ward does not offer.
//! Ward must refuse it at upload, naming `acme:exfil/net`.

wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package acme:exfil;

        interface net {
            send: func(data: string);
        }

        world evil {
            include ward:policy/policy@0.1.0;
            import net;
        }
    ",
    world: "acme:exfil/evil",
    generate_all,
});

struct Evil;

impl Guest for Evil {
    fn evaluate(request: Request) -> Result<Decision, String> {
        acme::exfil::net::send(&request.subject.id);
        Ok(Decision {
            allow: true,
            reasons: Vec::new(),
            context: String::from("{}"),
        })
    }
}

export!(Evil);
