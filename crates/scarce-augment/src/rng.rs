//! Counter-based random streams: a draw is a pure function of (seed, sample id, epoch,
//! transform, counter), so results never depend on thread count or visiting order.
//! SplitMix64's mixer as a keyed hash, as in `scarce_core::rng` (kept here so this crate
//! needs no tensor library).

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A keyed stream of random draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rand {
    key: u64,
}

impl Rand {
    /// The root stream of a seed.
    pub fn new(seed: u64) -> Self {
        Rand {
            key: mix(seed ^ GAMMA),
        }
    }

    /// A stream from a stored key (replaying recorded noise).
    pub fn from_key(key: u64) -> Self {
        Rand { key }
    }

    /// This stream's key.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The child stream for an index (sample id, epoch, position in a pipeline).
    pub fn at(&self, index: u64) -> Self {
        Rand {
            key: mix(self.key ^ mix(index.wrapping_add(0x632B_E59B_D9B4_E019))),
        }
    }

    /// The child stream for a name (a transform).
    pub fn child(&self, name: &str) -> Self {
        let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        self.at(h)
    }

    /// The `counter`-th 64-bit draw.
    pub fn u64(&self, counter: u64) -> u64 {
        mix(self.key.wrapping_add(counter.wrapping_mul(GAMMA)))
    }

    /// Uniform on `[0, 1)`.
    pub fn uniform(&self, counter: u64) -> f64 {
        (self.u64(counter) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on `[lo, hi)`.
    pub fn range(&self, counter: u64, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform(counter)
    }

    /// Standard normal (Box–Muller on draws `2c` and `2c + 1`).
    pub fn normal(&self, counter: u64) -> f64 {
        let u1 = 1.0 - self.uniform(2 * counter);
        let u2 = self.uniform(2 * counter + 1);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Two independent standard normals from draws `2c` and `2c + 1` (both outputs of
    /// Box–Muller; the first equals [`Rand::normal`]).
    pub fn normal_pair(&self, counter: u64) -> (f64, f64) {
        let u1 = 1.0 - self.uniform(2 * counter);
        let u2 = self.uniform(2 * counter + 1);
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        (r * c, r * s)
    }

    /// An integer uniform on `0..n` (`n > 0`).
    pub fn below(&self, counter: u64, n: u64) -> u64 {
        ((self.u64(counter) as u128 * n as u128) >> 64) as u64
    }
}
