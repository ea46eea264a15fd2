//! The Xet routes against hostile callers: tokens are scoped and signed, CAS routes refuse
//! before reading, a xorb must hash to its name, and a shard may describe only bytes its
//! uploader sent, with the sha256 they really have. Each refusal changes nothing.

mod support;

use bytes::Bytes;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use sha2::Digest;
use support::{Hub, RawClient, files_under};
use xet_core_structures::merklehash::{MerkleHash, compute_data_hash, file_hash};
use xet_core_structures::metadata_shard::Sha256;
use xet_core_structures::metadata_shard::file_structs::{FileDataSequenceEntry, FileDataSequenceHeader, FileMetadataExt, MDBFileInfo};
use xet_core_structures::metadata_shard::shard_in_memory::MDBInMemoryShard;
use xet_core_structures::xorb_object::{Chunk, CompressionScheme, RawXorbData, SerializedXorbObject};

/// A xorb of three chunks of `seed`-derived bytes, as a client serializes it (footer included:
/// the server stops reading at it), with its hash and the file those chunks make.
struct Upload {
    xorb_hash: MerkleHash,
    xorb: Vec<u8>,
    file: Vec<u8>,
    chunks: Vec<(MerkleHash, u64)>,
}

fn upload(seed: u8) -> Upload {
    let parts: Vec<Vec<u8>> = (0..3u8).map(|i| (0..5000u32).map(|j| (j as u8).wrapping_mul(seed).wrapping_add(i)).collect()).collect();
    let chunks: Vec<Chunk> = parts.iter().map(|p| Chunk { hash: compute_data_hash(p), data: Bytes::from(p.clone()) }).collect();
    let serialized =
        SerializedXorbObject::from_xorb_with_compression(RawXorbData::from_chunks(&chunks, vec![0]), CompressionScheme::None, true, 0)
            .expect("xorb");
    Upload {
        xorb_hash: serialized.hash,
        xorb: serialized.serialized_data,
        file: parts.concat(),
        chunks: chunks.iter().map(|c| (c.hash, c.data.len() as u64)).collect(),
    }
}

/// A shard describing `upload`'s file, claiming `sha256`.
fn shard(upload: &Upload, sha256: [u8; 32]) -> Vec<u8> {
    let mut shard = MDBInMemoryShard::default();
    shard
        .add_file_reconstruction_info(MDBFileInfo {
            metadata: FileDataSequenceHeader::new(file_hash(&upload.chunks), 1, false, true),
            segments: vec![FileDataSequenceEntry::new(upload.xorb_hash, upload.file.len() as u32, 0, 3)],
            verification: vec![],
            metadata_ext: Some(FileMetadataExt::new(Sha256::from_be_bytes(sha256))),
        })
        .expect("file info");
    shard.to_bytes().expect("shard")
}

fn sha256(data: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(data).into()
}

/// A Xet token of `mode` (`read` or `write`) for `repo`, got with `hub_token`.
fn xet_token(http: &Client, hub: &Hub, hub_token: &str, repo: &str, mode: &str) -> reqwest::blocking::Response {
    http.get(format!("{}/api/models/{repo}/xet-{mode}-token/main", hub.url())).bearer_auth(hub_token).send().unwrap()
}

fn access_token(resp: reqwest::blocking::Response) -> String {
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().unwrap();
    body["accessToken"].as_str().unwrap().to_string()
}

#[test]
fn xet_tokens_are_scoped_to_what_the_hub_token_may_do() {
    let hub = Hub::start();
    let http = Client::new();
    assert!(RawClient::new(&hub).create_model("weights").unwrap().status().is_success());

    // The token comes as JSON (hf_xet) and as headers (huggingface_hub's own reads), the same.
    let resp = xet_token(&http, &hub, &hub.token, "alice/weights", "write");
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers().clone();
    let body: Value = resp.json().unwrap();
    assert_eq!(body["casUrl"], format!("{}/xet", hub.url()));
    assert_eq!(headers["x-xet-cas-url"], body["casUrl"].as_str().unwrap());
    assert_eq!(headers["x-xet-access-token"], body["accessToken"].as_str().unwrap());
    assert_eq!(headers["x-xet-token-expiration"], body["exp"].to_string().as_str());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let exp = body["exp"].as_i64().unwrap();
    assert!(exp > now + 60 && exp <= now + 3600, "short-lived: {exp} vs now {now}");

    // Who may have which: read scope reads only; another user cannot write here; nobody
    // anonymous writes; a revision that does not exist has no read token.
    let reader = hub.add_token("alice", "read");
    assert_eq!(xet_token(&http, &hub, &reader, "alice/weights", "read").status().as_u16(), 200);
    assert_eq!(xet_token(&http, &hub, &reader, "alice/weights", "write").status().as_u16(), 403);
    let bob = hub.add_user("bob");
    assert_eq!(xet_token(&http, &hub, &bob, "alice/weights", "write").status().as_u16(), 403);
    let anonymous = http.get(format!("{}/api/models/alice/weights/xet-write-token/main", hub.url())).send().unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let missing = http.get(format!("{}/api/models/alice/weights/xet-read-token/nope", hub.url())).bearer_auth(&hub.token).send().unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[test]
fn cas_routes_refuse_before_reading_and_a_xorb_must_hash_to_its_name() {
    let hub = Hub::start();
    let http = Client::new();
    assert!(RawClient::new(&hub).create_model("weights").unwrap().status().is_success());
    let cas = format!("{}/xet", hub.url());
    let store = hub.store_dir.clone();
    let before = files_under(&store);

    // What this hub does not serve is a 404 before any authentication: clients fall back.
    for (method, path) in [("POST", "/v1/xorb-grants/default/00"), ("POST", "/v1/telemetry")] {
        let resp = http.request(method.parse().unwrap(), format!("{cas}{path}")).send().unwrap();
        assert_eq!(resp.status().as_u16(), 404, "{method} {path}");
    }

    // Global dedup is served, to holders of a token only.
    assert_eq!(http.get(format!("{cas}/v1/chunks/default/{}", "0".repeat(64))).send().unwrap().status().as_u16(), 401);

    let up = upload(7);
    let url = format!("{cas}/v1/xorbs/default/{}", up.xorb_hash.hex());
    let write = access_token(xet_token(&http, &hub, &hub.token, "alice/weights", "write"));
    let read = access_token(xet_token(&http, &hub, &hub.token, "alice/weights", "read"));
    // The last character changed (to one it is not: a token ending in `0` would stay itself).
    let forged = format!("{}{}", &write[..write.len() - 1], if write.ends_with('0') { '1' } else { '0' });
    let tampered = write.replacen(".w.", ".r.", 1);
    assert_eq!(http.post(&url).body(up.xorb.clone()).send().unwrap().status().as_u16(), 401, "no token");
    assert_eq!(http.post(&url).bearer_auth(&hub.token).body(up.xorb.clone()).send().unwrap().status().as_u16(), 401, "a hub token");
    assert_eq!(http.post(&url).bearer_auth(&forged).body(up.xorb.clone()).send().unwrap().status().as_u16(), 401, "forged");
    assert_eq!(http.post(&url).bearer_auth(&tampered).body(up.xorb.clone()).send().unwrap().status().as_u16(), 401, "tampered");
    assert_eq!(http.post(&url).bearer_auth(&read).body(up.xorb.clone()).send().unwrap().status().as_u16(), 403, "read token");
    // Bytes that hash to another xorb.
    let other = upload(9);
    let resp = http.post(&url).bearer_auth(&write).body(other.xorb.clone()).send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(files_under(&store), before, "nothing stored");
    // A xorb is checked as it arrives: one cut off inside a chunk, or whose first chunk header is
    // nonsense, is refused and leaves nothing behind either.
    for (bytes, what) in [(up.xorb[..20].to_vec(), "cut off"), (vec![0xff; 64], "garbage")] {
        let resp = http.post(&url).bearer_auth(&write).body(bytes).send().unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{what}");
    }
    assert_eq!(files_under(&store), before, "nothing stored");

    let resp: Value = http.post(&url).bearer_auth(&write).body(up.xorb.clone()).send().unwrap().json().unwrap();
    assert_eq!(resp, json!({"was_inserted": true}));
    let resp: Value = http.post(&url).bearer_auth(&write).body(up.xorb.clone()).send().unwrap().json().unwrap();
    assert_eq!(resp, json!({"was_inserted": false}));
}

#[test]
fn a_shard_registers_only_bytes_its_uploader_sent_with_the_sha256_they_have() {
    let hub = Hub::start();
    let http = Client::new();
    let alice = RawClient::new(&hub);
    assert!(alice.create_model("weights").unwrap().status().is_success());
    let bob_token = hub.add_user("bob");
    let bob = RawClient::with_token(&hub, &bob_token);
    assert!(bob.create_model("mine").unwrap().status().is_success());
    let cas = format!("{}/xet", hub.url());
    let alice_write = access_token(xet_token(&http, &hub, &hub.token, "alice/weights", "write"));
    let bob_write = access_token(xet_token(&http, &hub, &bob_token, "bob/mine", "write"));

    let up = upload(5);
    let xorb_url = format!("{cas}/v1/xorbs/default/{}", up.xorb_hash.hex());
    let post_shard = |token: &str, body: Vec<u8>| http.post(format!("{cas}/v1/shards")).bearer_auth(token).body(body).send().unwrap();
    let digest = sha256(&up.file);
    let oid = hex::encode(digest);

    // Bob uploads the xorb; Alice, who only knows its hash, cannot describe a file with it.
    assert_eq!(http.post(&xorb_url).bearer_auth(&bob_write).body(up.xorb.clone()).send().unwrap().status().as_u16(), 200);
    let resp = post_shard(&alice_write, shard(&up, digest));
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap().contains("not uploaded with this account"));
    assert!(hub.block_on(hub.state.db.blob(&oid)).unwrap().is_none(), "no blob");

    // Alice uploads it too, but claims a sha256 the bytes do not have: refused, no blob.
    assert_eq!(http.post(&xorb_url).bearer_auth(&alice_write).body(up.xorb.clone()).send().unwrap().status().as_u16(), 200);
    let lie = sha256(b"something else");
    let resp = post_shard(&alice_write, shard(&up, lie));
    assert_eq!(resp.status().as_u16(), 400);
    assert!(hub.block_on(hub.state.db.blob(&hex::encode(lie))).unwrap().is_none(), "the lie is no blob");
    // Through v2 the lie is found once the answer streams: its last event is the error.
    let post_shard_v2 = |token: &str, body: Vec<u8>| -> (u16, Vec<Value>) {
        let resp = http.post(format!("{cas}/v2/shards")).bearer_auth(token).body(body).send().unwrap();
        let status = resp.status().as_u16();
        let events = resp.text().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (status, events)
    };
    let (status, events) = post_shard_v2(&alice_write, shard(&up, lie));
    assert_eq!(status, 200);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert!(last["message"].as_str().unwrap().contains("sha256"), "{last}");
    assert_eq!(last["retryable"], false);
    assert!(hub.block_on(hub.state.db.blob(&hex::encode(lie))).unwrap().is_none(), "the lie is no blob");
    // A garbled shard is a 400 too, through either version.
    assert_eq!(post_shard(&alice_write, b"not a shard".to_vec()).status().as_u16(), 400);
    assert_eq!(post_shard_v2(&alice_write, b"not a shard".to_vec()).0, 400);
    assert_eq!(post_shard_v2(&hub.token, shard(&up, digest)).0, 401, "a hub token is no Xet token");

    // The truth registers, with progress before the result.
    let (status, events) = post_shard_v2(&alice_write, shard(&up, digest));
    assert_eq!(status, 200);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["validating", "validating", "committing", "result"], "{events:?}");
    assert_eq!(events[1], json!({"type": "validating", "verified": 1, "total": 1}));
    // Registering it again through v1 is no error either.
    let resp: Value = post_shard(&alice_write, shard(&up, digest)).json().unwrap();
    assert_eq!(resp["result"], 1);
    // Bob registered nothing: while the file is in no repository he may read, he cannot commit it
    // by its oid.
    let err = bob
        .commit(
            "bob/mine",
            &[
                json!({"key": "header", "value": {"summary": "claim"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": up.file.len()}}),
            ],
        )
        .unwrap_err();
    assert!(err.contains("400"), "{err}");
    // Alice can.
    alice
        .commit(
            "alice/weights",
            &[
                json!({"key": "header", "value": {"summary": "through Xet"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": up.file.len()}}),
            ],
        )
        .unwrap();
    let bytes = alice.get("/alice/weights/resolve/main/w.bin").bytes().unwrap();
    assert_eq!(bytes.as_ref(), up.file.as_slice(), "it downloads as uploaded");
}

#[test]
fn a_file_uploaded_through_lfs_reconstructs_through_xet_for_readers_of_its_repository_only() {
    let hub = Hub::start();
    let http = Client::new();
    let alice = RawClient::new(&hub);
    assert!(alice.create_model("weights").unwrap().status().is_success());
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let oid = alice.upload_lfs("alice/weights", &data).unwrap();
    alice
        .commit(
            "alice/weights",
            &[
                json!({"key": "header", "value": {"summary": "weights"}}),
                json!({"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": oid, "size": data.len()}}),
            ],
        )
        .unwrap();
    let bob_token = hub.add_user("bob");
    assert!(RawClient::with_token(&hub, &bob_token).create_model("other").unwrap().status().is_success());

    // /resolve advertises the file to Xet clients: its hash and where a read token comes from.
    let head = http.head(format!("{}/alice/weights/resolve/main/w.bin", hub.url())).send().unwrap();
    let xet_hash = head.headers()["x-xet-hash"].to_str().unwrap().to_string();
    let link = head.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("/api/models/alice/weights/xet-read-token/") && link.contains("rel=\"xet-auth\""), "{link}");
    let cas = format!("{}/xet", hub.url());
    let reconstruction = |token: &str, version: &str, range: Option<&str>| {
        let mut request = http.get(format!("{cas}/{version}/reconstructions/{xet_hash}")).bearer_auth(token);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        request.send().unwrap()
    };

    // Bob's token is for his own repository, which does not hold the file.
    let bob_read = access_token(xet_token(&http, &hub, &bob_token, "bob/other", "read"));
    assert_eq!(reconstruction(&bob_read, "v2", None).status().as_u16(), 404);
    assert_eq!(reconstruction("xet.1.1.r.99999999999.00", "v2", None).status().as_u16(), 401, "a forged token");

    let read = access_token(xet_token(&http, &hub, &bob_token, "alice/weights", "read"));
    let v1: Value = reconstruction(&read, "v1", None).json().unwrap();
    let v2: Value = reconstruction(&read, "v2", Some("bytes=0-99999999999")).json().unwrap();
    let unpacked: u64 = v2["terms"].as_array().unwrap().iter().map(|t| t["unpacked_length"].as_u64().unwrap()).sum();
    assert_eq!(unpacked, data.len() as u64, "the terms cover the file (the range is clamped to it)");
    assert_eq!(v1["terms"], v2["terms"]);
    assert_eq!(v2["offset_into_first_range"], 0);
    // A Xet client never GETs `/resolve`: its reconstructions are its downloads, one per day.
    let downloads = || hub.block_on(hub.state.db.get_repo(commons_db::RepoKind::Model, "alice", "weights")).unwrap().unwrap().downloads;
    for _ in 0..50 {
        if downloads() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(downloads(), 1, "bob's reconstructions count as one download");
    assert_eq!(reconstruction(&read, "v2", Some("bytes=300000-300010")).status().as_u16(), 416, "past the end");
    let mid: Value = reconstruction(&read, "v2", Some("bytes=1000-1999")).json().unwrap();
    assert_eq!(mid["offset_into_first_range"], 1000);

    // The xorb URLs need no credentials, and serve nothing but their signed range.
    let term = &v2["terms"][0];
    let entry = &v2["xorbs"][term["hash"].as_str().unwrap()][0];
    let url = entry["url"].as_str().unwrap();
    let (start, end) = (entry["ranges"][0]["bytes"]["start"].as_u64().unwrap(), entry["ranges"][0]["bytes"]["end"].as_u64().unwrap());
    let resp = http.get(url).header("range", format!("bytes={start}-{end}")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.bytes().unwrap().len() as u64, end - start + 1);
    let two = http.get(url).header("range", format!("bytes={start}-{},{}-{end}", start + 9, end - 9)).send().unwrap();
    assert_eq!(two.status().as_u16(), 206);
    assert!(two.headers()["content-type"].to_str().unwrap().starts_with("multipart/byteranges"));
    let beyond = http.get(url).header("range", format!("bytes={start}-{}", end + 1)).send().unwrap();
    assert_eq!(beyond.status().as_u16(), 416);
    let widened = url.replace(&format!("last={end}"), &format!("last={}", end + 1000));
    assert_eq!(http.get(&widened).send().unwrap().status().as_u16(), 403, "a widened URL");
}
