//! What the prober costs: the bytes of an idle check (counted by this binary's global
//! allocator, for threads that opt in) and the cap on probes in flight.

use super::*;

// ---------------------------------------------------------------- allocation counting

/// Counts the bytes allocated by threads that opted in (see `ten_thousand_checks_fit`).
struct CountingAllocator;

static COUNTED_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && counting() {
            COUNTED_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            COUNTED_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && counting() {
            COUNTED_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------- resources

#[test]
fn ten_thousand_checks_fit_in_a_small_budget() {
    const CHECKS: usize = 10_000;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let h = Harness::new();
        // Nothing listens on port 9 here; with a one-hour interval hardly any probe runs anyway.
        let target = SocketAddr::from(([127, 0, 0, 1], 9));
        let checks: BTreeMap<ObjectRef, Arc<Check>> = (0..CHECKS)
            .map(|i| {
                let mut c = http_check(&format!("check-{i:05}"), target, "/healthz");
                c.interval = Duration::from_secs(3600);
                (c.id.clone(), Arc::new(c))
            })
            .collect();
        // Everything runs on this thread (current-thread runtime), so it is all counted.
        COUNTING.set(true);
        h.prober.set_checks(&checks);
        sleep(Duration::from_millis(200)).await;
        COUNTING.set(false);
        let per_check = COUNTED_BYTES.load(Ordering::Relaxed) / CHECKS as isize;
        eprintln!("idle cost per check: {per_check} bytes");
        // 620 bytes here: the table entry (its Vec's growth slack included), the
        // strings of the initial state, a queue item. A task per check cost 1,449.
        assert!(per_check <= 1024, "{per_check} bytes per check");
        assert_eq!(h.prober.states().len(), CHECKS);
    });
}

/// The global cap holds: with one permit, the probes of three checks against a
/// server that never answers run one at a time, and every check still gets its turn.
#[tokio::test]
async fn probes_beyond_the_in_flight_cap_wait_their_turn() {
    let server = TestServer::http(Mode::Hang).await;
    let h = Harness::with_config(ProberConfig { max_in_flight: 1, ..ProberConfig::default() });
    let checks: Vec<Check> = (0..3)
        .map(|i| {
            let mut check = http_check(&format!("capped-{i}"), server.addr, "/");
            check.timeout = Duration::from_millis(150);
            check
        })
        .collect();
    h.set(&checks);
    let deadline = Instant::now() + SOON;
    let mut most = 0.0f64;
    while !(0..3).all(|i| h.state(&format!("capped-{i}")).is_some_and(|s| s.reason == "Timeout")) {
        assert!(Instant::now() < deadline, "not every check was probed: {:?}", h.prober.states());
        most = most.max(h.metric("failoverdns_probes_in_flight"));
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(most, 1.0, "probes in flight beyond the cap");
}
