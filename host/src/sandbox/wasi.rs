//! The WASI calls that may wait, made without `block_on`.
//!
//! wasmtime-wasi's synchronous bindings run every call that may wait (a
//! blocking write or flush of stdout/stderr, `poll`, dropping a stream,
//! creating a UDP socket) through `Handle::block_on` on the calling thread.
//! Ward runs policies on its async workers too (`http.inline_decisions`),
//! where `block_on` panics ("Cannot start a runtime from within a
//! runtime"): one `println!` or panic message in a policy would take the
//! connection down. The same calls are therefore linked again here, over
//! wasmtime-wasi's own asynchronous implementations, driven on the calling
//! thread by [`drive`], which never enters a runtime and never waits past
//! the evaluation's deadline.
//!
//! What else wasmtime-wasi runs through `block_on` cannot be reached by a
//! policy: the filesystem calls need a descriptor (there are no preopened
//! directories), TCP calls need a socket (creating one is refused) and the
//! UDP calls need a socket from the `create-udp-socket` linked here (which
//! refuses too).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

use wasmtime::Trap;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sockets::network;
use wasmtime_wasi::p2::bindings::sockets::udp_create_socket as async_udp_create;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, SocketError, StreamError, StreamResult, UdpSocket,
};
use wasmtime_wasi::runtime::with_ambient_tokio_runtime;
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

use super::host::StoreState;

/// Replaces, in `linker` (which already holds wasmtime-wasi's synchronous
/// bindings), every call a policy can reach that would `block_on`.
pub(super) fn link(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    streams::add_to_linker::<StoreState, Io>(linker, io)?;
    poll::add_to_linker::<StoreState, Io>(linker, io)?;
    udp_create_socket::add_to_linker::<StoreState, Sockets>(linker, sockets)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `future` to completion on this thread: polled here, the thread
/// parked while it waits, never past `until` (then the evaluation traps as
/// interrupted, which Ward reports as a timeout; an inline attempt is then
/// run again on a thread that may block). Timers and the like find a Tokio
/// runtime to register with, but nothing here enters one.
fn drive<F: Future>(until: Option<Instant>, future: F) -> wasmtime::Result<F::Output> {
    with_ambient_tokio_runtime(|| {
        let mut future = pin!(future);
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return Ok(output);
            }
            match until {
                Some(until) => {
                    let now = Instant::now();
                    if now >= until {
                        return Err(Trap::Interrupt.into());
                    }
                    std::thread::park_timeout(until - now);
                }
                None => std::thread::park(),
            }
        }
    })
}

/// Wakes the thread that [`drive`]s a future.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A store's resources and how long its evaluation may still wait.
struct Waiting<T> {
    inner: T,
    until: Option<Instant>,
}

/// The store's resource table, for the `wasi:io` calls.
fn io(state: &mut StoreState) -> Waiting<&mut ResourceTable> {
    Waiting {
        until: state.wait_until,
        inner: &mut state.table,
    }
}

/// The store's sockets context, for `create-udp-socket`.
fn sockets(state: &mut StoreState) -> Waiting<WasiSocketsCtxView<'_>> {
    Waiting {
        until: state.wait_until,
        inner: state.sockets(),
    }
}

struct Io;

impl HasData for Io {
    type Data<'a> = Waiting<&'a mut ResourceTable>;
}

struct Sockets;

impl HasData for Sockets {
    type Data<'a> = Waiting<WasiSocketsCtxView<'a>>;
}

/// A wait cut short by the deadline, as a stream error (a trap).
fn stream_wait<T>(waited: wasmtime::Result<StreamResult<T>>) -> StreamResult<T> {
    waited.map_err(StreamError::Trap)?
}

impl streams::Host for Waiting<&mut ResourceTable> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(&mut *self.inner, err)
    }
}

impl streams::HostOutputStream for Waiting<&mut ResourceTable> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        let until = self.until;
        drive(
            until,
            async_streams::HostOutputStream::drop(&mut *self.inner, stream),
        )?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(&mut *self.inner, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(&mut *self.inner, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostOutputStream::blocking_write_and_flush(
                &mut *self.inner,
                stream,
                bytes,
            ),
        ))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                &mut *self.inner,
                stream,
                len,
            ),
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(&mut *self.inner, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(&mut *self.inner, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(&mut *self.inner, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostOutputStream::blocking_flush(&mut *self.inner, stream),
        ))
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(&mut *self.inner, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostOutputStream::blocking_splice(&mut *self.inner, dst, src, len),
        ))
    }
}

impl streams::HostInputStream for Waiting<&mut ResourceTable> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        let until = self.until;
        drive(
            until,
            async_streams::HostInputStream::drop(&mut *self.inner, stream),
        )?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(&mut *self.inner, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostInputStream::blocking_read(&mut *self.inner, stream, len),
        ))
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(&mut *self.inner, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let until = self.until;
        stream_wait(drive(
            until,
            async_streams::HostInputStream::blocking_skip(&mut *self.inner, stream, len),
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(&mut *self.inner, stream)
    }
}

impl poll::Host for Waiting<&mut ResourceTable> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let until = self.until;
        drive(until, async_poll::Host::poll(&mut *self.inner, pollables))?
    }
}

impl poll::HostPollable for Waiting<&mut ResourceTable> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        let until = self.until;
        drive(
            until,
            async_poll::HostPollable::ready(&mut *self.inner, pollable),
        )?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let until = self.until;
        drive(
            until,
            async_poll::HostPollable::block(&mut *self.inner, pollable),
        )?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(&mut *self.inner, pollable)
    }
}

impl udp_create_socket::Host for Waiting<WasiSocketsCtxView<'_>> {
    fn create_udp_socket(
        &mut self,
        address_family: udp_create_socket::IpAddressFamily,
    ) -> Result<Resource<UdpSocket>, SocketError> {
        let until = self.until;
        drive(
            until,
            async_udp_create::Host::create_udp_socket(&mut self.inner, address_family),
        )
        .map_err(SocketError::trap)?
    }
}

impl network::Host for Waiting<WasiSocketsCtxView<'_>> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<network::ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<network::Error>,
    ) -> wasmtime::Result<Option<network::ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for Waiting<WasiSocketsCtxView<'_>> {
    fn drop(&mut self, network: Resource<network::Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, network)
    }
}
