//! Secure aggregation (Bonawitz et al. 2017, the semi-honest protocol with double masking):
//! the server learns the sum of the clients' vectors and nothing else about any one of them,
//! and the sum survives clients that drop out after sharing their keys.
//!
//! Rounds, each a message type so any transport can carry them:
//! 1. [`SecAggClient::new`] → [`PublicKeys`]; [`SecAggServer::collect_keys`] broadcasts them.
//! 2. [`SecAggClient::share_keys`]: Shamir shares (t of n) of the client's mask key and of
//!    its self-mask seed, sealed for each other client with ChaCha20-Poly1305 under an
//!    X25519 key, the session and both ids bound in; [`SecAggServer::route`] delivers them.
//! 3. [`SecAggClient::masked_input`]: the quantised vector plus its self mask plus the
//!    pairwise masks, mod 2⁶⁴ ([`MaskedInput`]); the server records who sent one.
//! 4. [`SecAggClient::unmask`]: for each survivor the share of its self-mask seed, for each
//!    dropped client the share of its mask key, never both for one client;
//!    [`SecAggServer::unmask`] reconstructs, checks each secret against the public key
//!    announced in round 1, removes the masks and decodes the sum.
//!
//! Masks are ChaCha20 streams keyed by SHA-256 of an X25519 shared secret (pairwise) or of
//! the seed (self), so a masked vector is uniform on Z_{2⁶⁴}ⁿ whatever the input. Values
//! are quantised to `bits` bits over `[−range, range]` by rounding, so the decoded sum is
//! within `clients · step / 2` per coordinate of the true sum ([`SecAggConfig::error_bound`]).
//! A weighted mean is two sums: send `n_i · x_i` (and `n_i` as one more coordinate).

use std::collections::{BTreeMap, BTreeSet};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::shamir::{self, Secret, Share};
use crate::{Error, Result};

/// The settings every party of one aggregation shares.
#[derive(Debug, Clone, PartialEq)]
pub struct SecAggConfig {
    /// A fresh number for each aggregation: shares and masks are bound to it, so nothing
    /// from another session is accepted.
    pub session: u64,
    /// Clients in the session (ids 0..clients, at most 255).
    pub clients: usize,
    /// Shares needed to reconstruct a secret; the sum survives up to `clients − threshold`
    /// dropouts. Above `clients / 2` for safety against a server that lies about who dropped.
    pub threshold: usize,
    /// Length of each client's vector.
    pub len: usize,
    /// Inputs must lie in `[−range, range]`.
    pub range: f64,
    /// Quantisation bits per value.
    pub bits: u32,
}

impl SecAggConfig {
    /// Errors unless the settings are usable.
    pub fn check(&self) -> Result<()> {
        if !(2..=255).contains(&self.clients) {
            return Err(Error::config(
                "clients",
                format!("{}: must be in 2..=255", self.clients),
            ));
        }
        if self.threshold < 2 || self.threshold > self.clients {
            return Err(Error::config(
                "threshold",
                format!("{}: must be in 2..={}", self.threshold, self.clients),
            ));
        }
        if !(self.range.is_finite() && self.range > 0.0) {
            return Err(Error::config(
                "range",
                format!("{}: must be finite and positive", self.range),
            ));
        }
        // The true sum of quantised values must fit in 64 bits: clients · (2^bits − 1).
        let headroom = 64 - (self.clients as u64).next_power_of_two().trailing_zeros();
        if self.bits == 0 || self.bits > headroom.min(53) {
            return Err(Error::config(
                "bits",
                format!(
                    "{}: must be in 1..={} for {} clients",
                    self.bits,
                    headroom.min(53),
                    self.clients
                ),
            ));
        }
        Ok(())
    }

    fn levels(&self) -> f64 {
        ((1u64 << self.bits) - 1) as f64
    }

    /// The quantisation step `2 · range / (2^bits − 1)`.
    pub fn step(&self) -> f64 {
        2.0 * self.range / self.levels()
    }

    /// The largest difference, per coordinate, between the decoded sum of `summed` clients
    /// and the true sum: each value is rounded to the nearest step.
    pub fn error_bound(&self, summed: usize) -> f64 {
        summed as f64 * self.step() / 2.0
    }

    fn quantise(&self, client: u32, x: &[f64]) -> Result<Vec<u64>> {
        if x.len() != self.len {
            return Err(Error::Client {
                client: client as usize,
                reason: format!("{} values where the session has {}", x.len(), self.len),
            });
        }
        x.iter()
            .enumerate()
            .map(|(j, &v)| {
                if v.is_nan() || v.abs() > self.range {
                    return Err(Error::Client {
                        client: client as usize,
                        reason: format!("value {j} = {v} is outside ±{} (`range`)", self.range),
                    });
                }
                Ok(((v + self.range) / self.step()).round() as u64)
            })
            .collect()
    }
}

/// Round 1: a client's public keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKeys {
    /// The client's id.
    pub client: u32,
    /// X25519 key for sealing shares to this client.
    pub cipher: [u8; 32],
    /// X25519 key for the pairwise masks.
    pub mask: [u8; 32],
    /// X25519 public key of the self-mask seed (lets the server check a reconstructed seed).
    pub self_mask: [u8; 32],
}

/// Round 2: one client's shares for another, sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedShares {
    /// Sender.
    pub from: u32,
    /// Recipient.
    pub to: u32,
    /// ChaCha20-Poly1305 nonce.
    pub nonce: [u8; 12],
    /// Both shares, sealed; the session and both ids are authenticated with them.
    pub ciphertext: Vec<u8>,
}

/// Round 3: a client's masked, quantised vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedInput {
    /// The client's id.
    pub client: u32,
    /// `q(x) + self mask + Σ pairwise masks` mod 2⁶⁴.
    pub values: Vec<u64>,
}

/// Which secret a revealed share belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The X25519 mask key of a client that dropped out (removes its pairwise masks).
    MaskKey,
    /// The self-mask seed of a client that sent its input.
    SelfMask,
}

/// Round 4: one share revealed to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevealedShare {
    /// The session it was made for.
    pub session: u64,
    /// The client whose secret it is.
    pub owner: u32,
    /// The client that held it.
    pub holder: u32,
    /// Which secret.
    pub kind: SecretKind,
    /// The share.
    pub share: Share,
}

/// Round 4: what one client reveals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmasking {
    /// The client's id.
    pub client: u32,
    /// Its shares of other clients' secrets (and its own self-mask share).
    pub shares: Vec<RevealedShare>,
}

/// The outcome of an aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct SecureSum {
    /// The decoded sum of the surviving clients' vectors.
    pub sum: Vec<f64>,
    /// Whose vectors are in the sum.
    pub summed: Vec<u32>,
    /// Clients that shared keys but sent no input (their masks were removed).
    pub dropped: Vec<u32>,
    /// Shares the server refused, each with the reason.
    pub rejected: Vec<String>,
    /// Per-coordinate bound on `|sum − true sum|`.
    pub error_bound: f64,
}

fn os_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

fn random_secret(rng: &mut ChaCha20Rng) -> Secret {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

/// SHA-256 of a label, the session and `parts`: the one key derivation used throughout.
fn derive(label: &str, session: u64, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(session.to_le_bytes());
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `len` words of the ChaCha20 stream keyed by `key`, added with `sign` into `acc`.
fn add_stream(acc: &mut [u64], key: [u8; 32], negate: bool) {
    let mut rng = ChaCha20Rng::from_seed(key);
    for a in acc.iter_mut() {
        let m = rng.next_u64();
        *a = if negate {
            a.wrapping_sub(m)
        } else {
            a.wrapping_add(m)
        };
    }
}

fn pair_key(session: u64, own: &StaticSecret, other: &[u8; 32]) -> [u8; 32] {
    let shared = own.diffie_hellman(&PublicKey::from(*other));
    derive("scarce-secagg pair mask", session, &[shared.as_bytes()])
}

fn self_key(session: u64, seed: &Secret) -> [u8; 32] {
    derive("scarce-secagg self mask", session, &[seed])
}

fn public_of(secret: &Secret) -> [u8; 32] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// Associated data of a sealed message: the session and both ids.
fn sealed_ad(session: u64, from: u32, to: u32) -> Vec<u8> {
    let mut ad = session.to_le_bytes().to_vec();
    ad.extend(from.to_le_bytes());
    ad.extend(to.to_le_bytes());
    ad
}

fn check_key_list(cfg: &SecAggConfig, keys: &[PublicKeys]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for k in keys {
        if k.client as usize >= cfg.clients || !seen.insert(k.client) {
            return Err(Error::Client {
                client: k.client as usize,
                reason: "id repeated or not in the session".into(),
            });
        }
    }
    if keys.len() < cfg.threshold {
        return Err(Error::config(
            "threshold",
            format!(
                "{} clients announced keys, fewer than the threshold {}",
                keys.len(),
                cfg.threshold
            ),
        ));
    }
    Ok(())
}

/// One client's side of a session.
pub struct SecAggClient {
    id: u32,
    cfg: SecAggConfig,
    cipher: StaticSecret,
    mask: StaticSecret,
    mask_secret: Secret,
    self_seed: Secret,
    keys: BTreeMap<u32, PublicKeys>,
    /// Shares held for others: (mask-key share, self-mask share), by owner.
    held: BTreeMap<u32, (Share, Share)>,
    /// Clients that completed round 2 (as seen by this client).
    sharing: BTreeSet<u32>,
}

impl std::fmt::Debug for SecAggClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs.
        f.debug_struct("SecAggClient")
            .field("id", &self.id)
            .field("session", &self.cfg.session)
            .finish_non_exhaustive()
    }
}

impl SecAggClient {
    /// A client with fresh keys from the operating system's generator, and its round-1
    /// message.
    pub fn new(id: u32, cfg: &SecAggConfig) -> Result<(SecAggClient, PublicKeys)> {
        cfg.check()?;
        if id as usize >= cfg.clients {
            return Err(Error::config(
                "id",
                format!("{id}: the session has clients 0..{}", cfg.clients),
            ));
        }
        let mut rng = os_rng();
        let cipher = StaticSecret::from(random_secret(&mut rng));
        let mask_secret = random_secret(&mut rng);
        let self_seed = random_secret(&mut rng);
        let keys = PublicKeys {
            client: id,
            cipher: PublicKey::from(&cipher).to_bytes(),
            mask: public_of(&mask_secret),
            self_mask: public_of(&self_seed),
        };
        let client = SecAggClient {
            id,
            cfg: cfg.clone(),
            cipher,
            mask: StaticSecret::from(mask_secret),
            mask_secret,
            self_seed,
            keys: BTreeMap::new(),
            held: BTreeMap::new(),
            sharing: BTreeSet::new(),
        };
        Ok((client, keys))
    }

    fn cipher_for(&self, other: &PublicKeys) -> ChaCha20Poly1305 {
        let shared = self.cipher.diffie_hellman(&PublicKey::from(other.cipher));
        let key = derive("scarce-secagg seal", self.cfg.session, &[shared.as_bytes()]);
        ChaCha20Poly1305::new(&key.into())
    }

    /// Round 2: takes the broadcast keys and seals this client's shares for each other
    /// client.
    pub fn share_keys(&mut self, keys: &[PublicKeys]) -> Result<Vec<SealedShares>> {
        check_key_list(&self.cfg, keys)?;
        let own = keys.iter().find(|k| k.client == self.id);
        if own.map(|k| (k.cipher, k.mask)) != Some((self.cipher_public(), self.mask_public())) {
            return Err(Error::config(
                "keys",
                format!("the broadcast does not hold client {}'s own keys", self.id),
            ));
        }
        self.keys = keys.iter().map(|k| (k.client, *k)).collect();
        let mut rng = os_rng();
        let n = self.cfg.clients;
        let mask_shares = shamir::split(&self.mask_secret, self.cfg.threshold, n, &mut rng)?;
        let self_shares = shamir::split(&self.self_seed, self.cfg.threshold, n, &mut rng)?;
        let own_x = self.id as usize;
        self.held
            .insert(self.id, (mask_shares[own_x], self_shares[own_x]));
        let mut out = Vec::with_capacity(keys.len());
        for k in keys.iter().filter(|k| k.client != self.id) {
            let (m, s) = (
                mask_shares[k.client as usize],
                self_shares[k.client as usize],
            );
            let mut plain = Vec::with_capacity(66);
            plain.push(m.x);
            plain.extend(m.y);
            plain.push(s.x);
            plain.extend(s.y);
            let mut nonce = [0u8; 12];
            rng.fill_bytes(&mut nonce);
            let ad = sealed_ad(self.cfg.session, self.id, k.client);
            let ciphertext = self
                .cipher_for(k)
                .encrypt(
                    &nonce.into(),
                    Payload {
                        msg: &plain,
                        aad: &ad,
                    },
                )
                .map_err(|_| Error::config("seal", "ChaCha20-Poly1305 refused to seal"))?;
            out.push(SealedShares {
                from: self.id,
                to: k.client,
                nonce,
                ciphertext,
            });
        }
        Ok(out)
    }

    fn cipher_public(&self) -> [u8; 32] {
        PublicKey::from(&self.cipher).to_bytes()
    }

    fn mask_public(&self) -> [u8; 32] {
        PublicKey::from(&self.mask).to_bytes()
    }

    /// Opens one sealed message; refuses it unless it authenticates for this session and
    /// this pair.
    fn open(&self, sealed: &SealedShares) -> Result<(Share, Share)> {
        let refuse = |reason: &str| Error::Client {
            client: sealed.from as usize,
            reason: format!("shares for client {}: {reason}", self.id),
        };
        if sealed.to != self.id {
            return Err(refuse("addressed to another client"));
        }
        let sender = self
            .keys
            .get(&sealed.from)
            .ok_or_else(|| refuse("sender announced no keys"))?;
        let ad = sealed_ad(self.cfg.session, sealed.from, self.id);
        let plain = self
            .cipher_for(sender)
            .decrypt(
                &sealed.nonce.into(),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &ad,
                },
            )
            .map_err(|_| refuse("do not authenticate (altered, or from another session)"))?;
        if plain.len() != 66 {
            return Err(refuse("wrong length"));
        }
        let share = |b: &[u8]| {
            let mut y = [0u8; 32];
            y.copy_from_slice(&b[1..33]);
            Share { x: b[0], y }
        };
        let (m, s) = (share(&plain[..33]), share(&plain[33..]));
        if m.x as u32 != self.id + 1 || s.x as u32 != self.id + 1 {
            return Err(refuse("share point is not this client's"));
        }
        Ok((m, s))
    }

    /// Round 3: opens the shares routed to this client (refusing any that do not
    /// authenticate, are repeated or are addressed elsewhere, naming the sender) and masks
    /// `input`. The senders are the clients this one's pairwise masks cover.
    pub fn masked_input(&mut self, routed: &[SealedShares], input: &[f64]) -> Result<MaskedInput> {
        if self.keys.is_empty() {
            return Err(Error::config("round", "masked_input before share_keys"));
        }
        let mut opened = BTreeMap::new();
        for s in routed {
            let shares = self.open(s)?;
            if opened.insert(s.from, shares).is_some() {
                return Err(Error::Client {
                    client: s.from as usize,
                    reason: format!("a second set of shares for client {}", self.id),
                });
            }
        }
        let mut sharing: BTreeSet<u32> = opened.keys().copied().collect();
        sharing.insert(self.id);
        if sharing.len() < self.cfg.threshold {
            return Err(Error::config(
                "threshold",
                format!(
                    "client {} got shares from {} clients, fewer than the threshold {}",
                    self.id,
                    sharing.len(),
                    self.cfg.threshold
                ),
            ));
        }
        self.held.extend(opened);
        let mut values = self.cfg.quantise(self.id, input)?;
        add_stream(
            &mut values,
            self_key(self.cfg.session, &self.self_seed),
            false,
        );
        for &other in sharing.iter().filter(|&&o| o != self.id) {
            let key = pair_key(self.cfg.session, &self.mask, &self.keys[&other].mask);
            // The lower id adds, the higher subtracts: the pair cancels in the sum.
            add_stream(&mut values, key, self.id > other);
        }
        self.sharing = sharing;
        Ok(MaskedInput {
            client: self.id,
            values,
        })
    }

    /// Round 4: given the clients whose inputs the server received, reveals the self-mask
    /// share of each of them and the mask-key share of each other client that shared keys.
    /// Refuses a list with fewer than `threshold` clients or with clients that never shared
    /// keys (the server could otherwise learn both secrets of one client).
    pub fn unmask(&self, survivors: &[u32]) -> Result<Unmasking> {
        if self.sharing.is_empty() {
            return Err(Error::config("round", "unmask before masked_input"));
        }
        let survivors: BTreeSet<u32> = survivors.iter().copied().collect();
        if survivors.len() < self.cfg.threshold {
            return Err(Error::config(
                "survivors",
                format!(
                    "{} survivors, fewer than the threshold {}",
                    survivors.len(),
                    self.cfg.threshold
                ),
            ));
        }
        if let Some(u) = survivors.iter().find(|u| !self.sharing.contains(u)) {
            return Err(Error::config(
                "survivors",
                format!("client {u} did not share keys with client {}", self.id),
            ));
        }
        let shares = self
            .sharing
            .iter()
            .map(|&owner| {
                let (mask, own) = self.held[&owner];
                let (kind, share) = if survivors.contains(&owner) {
                    (SecretKind::SelfMask, own)
                } else {
                    (SecretKind::MaskKey, mask)
                };
                RevealedShare {
                    session: self.cfg.session,
                    owner,
                    holder: self.id,
                    kind,
                    share,
                }
            })
            .collect();
        Ok(Unmasking {
            client: self.id,
            shares,
        })
    }
}

/// The server's side of a session: it routes messages and, at the end, learns the sum.
#[derive(Debug)]
pub struct SecAggServer {
    cfg: SecAggConfig,
    keys: BTreeMap<u32, PublicKeys>,
    sharing: BTreeSet<u32>,
    masked: BTreeMap<u32, Vec<u64>>,
}

impl SecAggServer {
    /// A server for one session.
    pub fn new(cfg: &SecAggConfig) -> Result<Self> {
        cfg.check()?;
        Ok(SecAggServer {
            cfg: cfg.clone(),
            keys: BTreeMap::new(),
            sharing: BTreeSet::new(),
            masked: BTreeMap::new(),
        })
    }

    /// Round 1: records the clients' keys and returns the list to broadcast.
    pub fn collect_keys(&mut self, keys: Vec<PublicKeys>) -> Result<Vec<PublicKeys>> {
        check_key_list(&self.cfg, &keys)?;
        self.keys = keys.iter().map(|k| (k.client, *k)).collect();
        Ok(keys)
    }

    /// Round 2: takes each client's sealed shares and returns them by recipient. A client
    /// that sent none has dropped out before masking and is left out of the session.
    pub fn route(
        &mut self,
        sent: Vec<Vec<SealedShares>>,
    ) -> Result<BTreeMap<u32, Vec<SealedShares>>> {
        let mut routed: BTreeMap<u32, Vec<SealedShares>> = BTreeMap::new();
        for bundle in sent {
            let Some(from) = bundle.first().map(|s| s.from) else {
                continue;
            };
            if !self.keys.contains_key(&from) || !self.sharing.insert(from) {
                return Err(Error::Client {
                    client: from as usize,
                    reason: "shares from a client without keys, or sent twice".into(),
                });
            }
            for s in bundle {
                if s.from != from || !self.keys.contains_key(&s.to) {
                    return Err(Error::Client {
                        client: from as usize,
                        reason: format!("a share from {} to {} in its bundle", s.from, s.to),
                    });
                }
                routed.entry(s.to).or_default().push(s);
            }
        }
        // Only shares between clients that both completed this round are delivered.
        for list in routed.values_mut() {
            list.retain(|s| self.sharing.contains(&s.from));
        }
        routed.retain(|to, _| self.sharing.contains(to));
        Ok(routed)
    }

    /// Round 3: records the masked inputs and returns the survivors (to send to every
    /// client). An input from a client that did not share keys, or of the wrong length,
    /// is an error naming it.
    pub fn collect_masked(&mut self, inputs: Vec<MaskedInput>) -> Result<Vec<u32>> {
        for m in inputs {
            if !self.sharing.contains(&m.client) || m.values.len() != self.cfg.len {
                return Err(Error::Client {
                    client: m.client as usize,
                    reason: "masked input from a client outside round 2, or of the wrong length"
                        .into(),
                });
            }
            self.masked.insert(m.client, m.values);
        }
        if self.masked.len() < self.cfg.threshold {
            return Err(Error::config(
                "threshold",
                format!(
                    "{} masked inputs, fewer than the threshold {}: the sum cannot be recovered",
                    self.masked.len(),
                    self.cfg.threshold
                ),
            ));
        }
        Ok(self.masked.keys().copied().collect())
    }

    /// Round 4: reconstructs the secrets from the revealed shares, removes every mask and
    /// decodes the sum. Shares from another session, from a client other than their holder,
    /// at a point that is not the holder's, repeated, or of the wrong kind are refused and
    /// listed; a share that does not fit the others is found by reconstructing from other
    /// subsets until the secret matches the owner's public key.
    pub fn unmask(&mut self, responses: Vec<Unmasking>) -> Result<SecureSum> {
        let survivors: BTreeSet<u32> = self.masked.keys().copied().collect();
        let dropped: Vec<u32> = self.sharing.difference(&survivors).copied().collect();
        let mut by_owner: BTreeMap<u32, Vec<Share>> = BTreeMap::new();
        let mut rejected = Vec::new();
        let mut responded = BTreeSet::new();
        for r in responses {
            if !survivors.contains(&r.client) || !responded.insert(r.client) {
                rejected.push(format!(
                    "client {}: not a survivor, or answered twice",
                    r.client
                ));
                continue;
            }
            for s in r.shares {
                let want = if survivors.contains(&s.owner) {
                    SecretKind::SelfMask
                } else {
                    SecretKind::MaskKey
                };
                let reason = if s.session != self.cfg.session {
                    Some(format!("from session {} (replayed)", s.session))
                } else if s.holder != r.client || s.share.x as u32 != r.client + 1 {
                    Some("not held by the client that sent it".to_string())
                } else if !self.sharing.contains(&s.owner) {
                    Some("for a client outside the session".to_string())
                } else if s.kind != want {
                    Some(format!("{:?} share where {:?} is due", s.kind, want))
                } else if by_owner
                    .get(&s.owner)
                    .is_some_and(|v| v.iter().any(|t| t.x == s.share.x))
                {
                    Some("repeated".to_string())
                } else {
                    None
                };
                match reason {
                    Some(why) => rejected.push(format!(
                        "share of client {} from client {}: {why}",
                        s.owner, r.client
                    )),
                    None => by_owner.entry(s.owner).or_default().push(s.share),
                }
            }
        }
        let mut acc = vec![0u64; self.cfg.len];
        for v in self.masked.values() {
            for (a, &x) in acc.iter_mut().zip(v) {
                *a = a.wrapping_add(x);
            }
        }
        for &u in &survivors {
            let seed = self.recover(u, &by_owner, |k| k.self_mask, &mut rejected)?;
            add_stream(&mut acc, self_key(self.cfg.session, &seed), true);
        }
        for &u in &dropped {
            let key = StaticSecret::from(self.recover(u, &by_owner, |k| k.mask, &mut rejected)?);
            for &v in &survivors {
                // v added +stream if v < u, −stream if v > u: undo it.
                let pair = pair_key(self.cfg.session, &key, &self.keys[&v].mask);
                add_stream(&mut acc, pair, v < u);
            }
        }
        let n = survivors.len() as f64;
        let step = self.cfg.step();
        Ok(SecureSum {
            sum: acc
                .iter()
                .map(|&q| q as f64 * step - n * self.cfg.range)
                .collect(),
            summed: survivors.into_iter().collect(),
            dropped,
            rejected,
            error_bound: self.cfg.error_bound(self.masked.len()),
        })
    }

    /// Reconstructs client `owner`'s secret whose public key `public` gives, from any
    /// `threshold` of its shares that agree with that key; shares off the found polynomial
    /// are listed as rejected.
    fn recover(
        &self,
        owner: u32,
        by_owner: &BTreeMap<u32, Vec<Share>>,
        public: impl Fn(&PublicKeys) -> [u8; 32],
        rejected: &mut Vec<String>,
    ) -> Result<Secret> {
        let t = self.cfg.threshold;
        let shares = by_owner.get(&owner).map(Vec::as_slice).unwrap_or(&[]);
        let expected = public(&self.keys[&owner]);
        let fail = |reason: String| Error::Client {
            client: owner as usize,
            reason,
        };
        if shares.len() < t {
            return Err(fail(format!(
                "{} valid shares of its secret, fewer than the threshold {t}",
                shares.len()
            )));
        }
        // Subsets of size t in lexicographic order, at most this many tried.
        const MAX_SUBSETS: usize = 100_000;
        let mut pick: Vec<usize> = (0..t).collect();
        for _ in 0..MAX_SUBSETS {
            let subset: Vec<Share> = pick.iter().map(|&i| shares[i]).collect();
            let secret = shamir::reconstruct(&subset)?;
            if public_of(&secret) == expected {
                for s in shares {
                    if shamir::interpolate(&subset, s.x)? != s.y {
                        rejected.push(format!(
                            "share of client {owner} at x = {}: does not fit the others",
                            s.x
                        ));
                    }
                }
                return Ok(secret);
            }
            // Next combination.
            let Some(i) = (0..t).rev().find(|&i| pick[i] < shares.len() - t + i) else {
                break;
            };
            pick[i] += 1;
            for j in i + 1..t {
                pick[j] = pick[j - 1] + 1;
            }
        }
        Err(fail(
            "no threshold subset of its shares reconstructs the announced key".into(),
        ))
    }
}
