//! The process's allocator: mimalloc, with options chosen for memory. The binary and
//! the core's scale benchmark install it with [`install_allocator!`], so the
//! benchmark measures what the server runs.

/// Makes mimalloc the global allocator of the crate it is called in, with
/// [`configure`] run as a constructor (on Linux; elsewhere mimalloc keeps its
/// defaults). A macro because both statics must belong to the final crate: a
/// constructor in a library's object file is not linked in unless referenced.
#[macro_export]
macro_rules! install_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::allocator::MiMalloc = $crate::allocator::MiMalloc;

        #[cfg(target_os = "linux")]
        #[used]
        #[unsafe(link_section = ".init_array")]
        static CONFIGURE_ALLOCATOR: extern "C" fn() = $crate::allocator::configure;
    };
}

pub use mimalloc::MiMalloc;

/// Options of the mimalloc (v3) that libmimalloc-sys builds, by their place in its
/// `mi_option_e` enum (its Rust bindings do not name them).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory first, unless the environment says otherwise (mimalloc reads
/// `MIMALLOC_<OPTION>`): pages freed go back to the system at once instead of staying
/// resident while the process idles (a large start leaves the parser's scratch
/// memory behind), and memory is committed as it is used rather than in huge pages.
/// `MIMALLOC_ARENA_EAGER_COMMIT=1` brings the huge pages back: a zone of a million
/// records starts about 15 % faster, an idle server takes 12 MiB more.
///
/// Meant to run as a constructor, before the Rust runtime allocates anything: the
/// first arena is reserved with the options of that moment. Allocates nothing itself.
pub extern "C" fn configure() {
    for (option, name, value) in [
        (MI_OPTION_PURGE_DELAY, c"MIMALLOC_PURGE_DELAY", 0),
        (MI_OPTION_ARENA_EAGER_COMMIT, c"MIMALLOC_ARENA_EAGER_COMMIT", 0),
    ] {
        // SAFETY: getenv reads the environment, which nothing writes yet; setting an
        // allocator option touches no memory.
        unsafe {
            if libc::getenv(name.as_ptr()).is_null() {
                libmimalloc_sys::mi_option_set(option, value);
            }
        }
    }
}
