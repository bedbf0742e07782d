//! A WebDAV folder as a peer, against SeaweedFS's WebDAV server on
//! 127.0.0.1: the same contract as buckets and folders. Skips loudly when
//! `weed` is not installed.

use trove_peer::testing::contract;
use trove_peer::Peer;
use trove_remote::testing::Seaweed;
use trove_remote::{Credentials, RemoteLocation, RemotePeer};

fn fresh(s: &Seaweed, name: &str) -> RemotePeer {
    let loc: RemoteLocation = format!(
        "webdav+http://{}/trove-{name}-{:08x}",
        s.webdav,
        rand::random::<u32>()
    )
    .parse()
    .unwrap();
    RemotePeer::create(name, &loc, &Credentials::default()).unwrap()
}

#[test]
fn a_webdav_folder_keeps_the_peer_contract() {
    let Some(s) = Seaweed::start(&["unused"]) else {
        return;
    };
    contract::put_get_has_list_range(&fresh(&s, "w1"));
    contract::wrong_hash_is_refused_and_nothing_stored(&fresh(&s, "w2"));
    contract::meta_put_get_list_per_container(&fresh(&s, "w3"));
    contract::stolen_key_cannot_overwrite_or_roll_back_metadata(&fresh(&s, "w4"));
    contract::a_hand_over_lets_the_new_identity_replace_the_old(&fresh(&s, "w4h"));
    let p = fresh(&s, "w5");
    let deleted = contract::deleted_fragment_is_gone_at_once(&p);
    assert!(p.undelete_fragment(&deleted.deleted.0).unwrap());
    contract::deleted_and_replaced_metadata_is_in_the_trash(&fresh(&s, "w6"));
}
