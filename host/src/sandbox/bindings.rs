//! Host bindings for the `ward:policy` world, and nothing else.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
});
