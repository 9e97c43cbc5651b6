//! The meta commands' cases for `protocol_suite`: every flag and mode of
//! `mg`, `ms`, `md`, `ma`, `mn` and `me` that memcached 1.6.18 implements,
//! each error, quiet mode closed by `mn`, and meta commands mixed with
//! classic ones on one connection. Every expected reply is what memcached
//! 1.6.18 sends; numbers that depend on the clock (`t`, `l`, `la`, `exp`
//! of an item with a TTL) or on the cas counter match any number.
//!
//! The table runs on a fresh server with `-I 1k`, after nothing else.

use super::{Table, BAD_CHUNK, BAD_FORMAT, END, ERROR, NON_NUMERIC, OK, STORED, TOO_LARGE};

const HD: &str = "HD\r\n";
const NS: &str = "NS\r\n";
const EX: &str = "EX\r\n";
const NF: &str = "NF\r\n";
const EN: &str = "EN\r\n";
const MN: &str = "MN\r\n";
const DUPLICATE: &str = "CLIENT_ERROR duplicate flag\r\n";
const INVALID: &str = "CLIENT_ERROR invalid flag\r\n";
const INVALID_OR_DUPLICATE: &str = "CLIENT_ERROR invalid or duplicate flag\r\n";
const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format\r\n";
const DECODE: &str = "CLIENT_ERROR error decoding key\r\n";
const OPAQUE_TOO_LONG: &str = "CLIENT_ERROR opaque token too long\r\n";

pub fn table() -> Table {
    let mut t = Table::default();
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    let opaque33 = format!("O{}", "9".repeat(32));

    // ---- mn, and lines that are no meta command
    t.case("mn", "mn\r\n", MN);
    t.case("mn ignores its arguments", "mn foo bar\r\n", MN);
    t.case("unknown meta command", "mx\r\n", ERROR);
    t.case("three-letter m command", "mgg k\r\n", ERROR);
    t.case("mg without key", "mg\r\n", ERROR);
    t.case("ms without key", "ms\r\n", ERROR);
    t.case("md without key", "md\r\n", ERROR);
    t.case("ma without key", "ma\r\n", ERROR);
    t.case("me without key", "me\r\n", BAD_FORMAT);

    // ---- mg on a miss
    t.case("mg miss", "mg mk\r\n", EN);
    t.case(
        "mg miss echoes O and k only",
        "mg mk O123 s v k t\r\n",
        "EN O123 kmk\r\n",
    );
    t.case("mg miss quiet", "mg mk q v\r\n", "");
    t.case("me miss", "me mk\r\n", EN);

    // ---- ms, then mg with each flag
    t.case("ms", "ms mk 2\r\nhi\r\n", HD);
    t.case("mg hit without flags", "mg mk\r\n", HD);
    t.case("mg v", "mg mk v\r\n", "VA 2\r\nhi\r\n");
    t.case(
        "get sees an ms item",
        "get mk\r\n",
        "VALUE mk 0 2\r\nhi\r\nEND\r\n",
    );
    t.case("ms F T0", "ms mf 3 F42 T0\r\nabc\r\n", HD);
    t.case(
        "mg s f t v",
        "mg mf s f t v\r\n",
        "VA 3 s3 f42 t-1\r\nabc\r\n",
    );
    t.case(
        "mg echoes in request order",
        "mg mf O99 k s\r\n",
        "HD O99 kmf s3\r\n",
    );
    t.case(
        "mg k and O with v",
        "mg mf v k O1\r\n",
        "VA 3 kmf O1\r\nabc\r\n",
    );
    t.case("mg q hit is sent", "mg mf q s\r\n", "HD s3\r\n");
    t.case(
        "mg ignores the rest of a flag token",
        "mg mf s99 vv\r\n",
        "VA 3 s3\r\nabc\r\n",
    );
    t.case("mg with extra spaces", "mg  mf   s  \r\n", "HD s3\r\n");
    t.case("mg c", "mg mf c\r\n", "HD c{#cas_mf}\r\n");
    t.case("ms max flags", "ms mx 1 F4294967295\r\nx\r\n", HD);
    t.case("mg max flags", "mg mx f\r\n", "HD f4294967295\r\n");
    t.case("ms empty value", "ms me0 0\r\n\r\n", HD);
    t.case("mg empty value", "mg me0 v s\r\n", "VA 0 s0\r\n\r\n");
    t.case("ms with bare LF line end", "ms mlf 1\nx\r\n", HD);
    t.case("mg with bare LF line end", "mg mlf v\n", "VA 1\r\nx\r\n");

    // ---- h, l, u: fetched before, last access, no fetch
    t.case("ms for h", "ms mh 1\r\nx\r\n", HD);
    t.case("mg h before any fetch", "mg mh h l\r\n", "HD h0 l{#}\r\n");
    t.case("mg h after a fetch", "mg mh h\r\n", "HD h1\r\n");
    t.case("ms for u", "ms mu 1\r\nx\r\n", HD);
    t.case("mg u does not fetch", "mg mu u v\r\n", "VA 1\r\nx\r\n");
    t.case(
        "me after mg u",
        "me mu\r\n",
        "ME mu exp=-1 la={#} cas={#} fetch=no cls=1 size=62\r\n",
    );
    t.case("mg h after mg u, then fetches", "mg mu h\r\n", "HD h0\r\n");
    t.case("mg h after mg h", "mg mu h\r\n", "HD h1\r\n");
    t.case("ms for get fetches", "ms mu 1\r\nx\r\n", HD);
    t.case("get fetches", "get mu\r\n", "VALUE mu 0 1\r\nx\r\nEND\r\n");
    t.case("mg h after get", "mg mu h\r\n", "HD h1\r\n");

    // ---- T touches, t reads the TTL left at its place in the line
    t.case("ms T", "ms mt 1 T100\r\nx\r\n", HD);
    t.case("mg t", "mg mt t v\r\n", "VA 1 t{#}\r\nx\r\n");
    t.case("ms no TTL", "ms mt 1\r\nx\r\n", HD);
    t.case(
        "mg t before T shows the old TTL",
        "mg mt t T100\r\n",
        "HD t-1\r\n",
    );
    t.case(
        "mg t after T shows the new TTL",
        "mg mt T1000 t\r\n",
        "HD t{#}\r\n",
    );
    t.case("mg T-1 expires", "mg mt T-1\r\n", HD);
    t.case("mg after T-1", "mg mt\r\n", EN);
    t.case("mg T on a miss", "mg mt T10 t\r\n", EN);

    // ---- N: a miss creates an empty item and wins (W); then Z
    t.case(
        "mg N on a miss wins",
        "mg mv N30 s v\r\n",
        "VA 0 s0 W\r\n\r\n",
    );
    t.case(
        "mg N again sees the win sent",
        "mg mv N30 s\r\n",
        "HD s0 Z\r\n",
    );
    t.case("mg without N sees Z too", "mg mv v\r\n", "VA 0 Z\r\n\r\n");
    t.case("ms fills the vivified item", "ms mv 1\r\nF\r\n", HD);
    t.case(
        "mg N on the filled item",
        "mg mv N30 v\r\n",
        "VA 1\r\nF\r\n",
    );
    t.case("mg N0 t", "mg mv0 N0 t\r\n", "HD t-1 W\r\n");

    // ---- R: a TTL left below R wins the right to recache, once
    t.case("ms for R", "ms mr 1 T100\r\nR\r\n", HD);
    t.case(
        "mg R below the TTL left",
        "mg mr R30 v\r\n",
        "VA 1\r\nR\r\n",
    );
    t.case(
        "mg R above the TTL left wins",
        "mg mr R200 v\r\n",
        "VA 1 W\r\nR\r\n",
    );
    t.case("mg R after the win", "mg mr R200 v\r\n", "VA 1 Z\r\nR\r\n");
    t.case("mg R on an item without TTL", "mg mf R200\r\n", HD);

    // ---- md I marks stale (X); the next fetch wins (W), later ones see Z
    t.case("ms for stale", "ms ms 1\r\nS\r\n", HD);
    t.case("md I", "md ms I\r\n", HD);
    t.case(
        "mg stale wins",
        "mg ms v c\r\n",
        "VA 1 c{#cas_stale} X W\r\nS\r\n",
    );
    t.case("mg stale after the win", "mg ms v\r\n", "VA 1 Z X\r\nS\r\n");
    t.case(
        "ms I with an older cas stores stale",
        "ms ms 2 I C1\r\nS2\r\n",
        HD,
    );
    t.case(
        "mg the stale store",
        "mg ms v c\r\n",
        "VA 2 c{#cas_s2} Z X\r\nS2\r\n",
    );
    t.case(
        "ms with the current cas",
        "ms ms 2 C{$cas_s2}\r\nS3\r\n",
        HD,
    );
    t.case(
        "the current cas clears stale",
        "mg ms v\r\n",
        "VA 2\r\nS3\r\n",
    );
    t.case(
        "ms I with a newer cas",
        "ms ms 1 I C999999999999\r\nz\r\n",
        EX,
    );
    t.case("md I T-1", "md ms I T-1\r\n", HD);
    t.case("md I T-1 expired it", "mg ms\r\n", EN);
    t.case("md I on a miss", "md ms I\r\n", NF);

    // ---- ms modes
    t.case("ms ME on an existing key", "ms mk 1 ME\r\nz\r\n", NS);
    t.case("ms ME on a new key", "ms me1 1 ME\r\nz\r\n", HD);
    t.case("ms MA", "ms mk 2 MA\r\n++\r\n", HD);
    t.case("ms MP", "ms mk 2 MP F7\r\n--\r\n", HD);
    t.case(
        "append and prepend keep flags",
        "mg mk v f\r\n",
        "VA 6 f0\r\n--hi++\r\n",
    );
    t.case("ms MR on a missing key", "ms nope 1 MR\r\nz\r\n", NS);
    t.case("ms MA on a missing key", "ms nope 1 MA\r\nz\r\n", NS);
    t.case("ms MP on a missing key", "ms nope 1 MP\r\nz\r\n", NS);
    t.case("missing-key modes store nothing", "mg nope\r\n", EN);
    t.case("ms MR", "ms mk 1 MR\r\nr\r\n", HD);
    t.case("ms MS", "ms mk 1 MS\r\ns\r\n", HD);
    t.case("mg after MS", "mg mk v\r\n", "VA 1\r\ns\r\n");
    t.case(
        "ms invalid mode",
        "ms mk 1 MX\r\nz\r\n",
        "CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    t.case(
        "ms lowercase mode",
        "ms mk 1 Ms\r\nz\r\n",
        "CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    t.case(
        "ms long mode",
        "ms mk 1 MSS\r\nz\r\n",
        "CLIENT_ERROR incorrect length for M token\r\n",
    );
    t.case(
        "ms empty mode",
        "ms mk 1 M\r\nz\r\n",
        "CLIENT_ERROR incorrect length for M token\r\n",
    );
    t.case(
        "refused modes stored nothing",
        "mg mk v\r\n",
        "VA 1\r\ns\r\n",
    );

    // ---- ms C: compare and swap, in each mode
    t.case("ms C on a missing key", "ms nope 1 C1\r\nz\r\n", NF);
    t.case("ms C wrong", "ms mk 1 C999999999999\r\nz\r\n", EX);
    t.case("ms C0", "ms mk 1 C0\r\nz\r\n", EX);
    t.case("mg c for ms C", "mg mk c\r\n", "HD c{#cas_mk}\r\n");
    t.case(
        "ms C right, c returns the new cas",
        "ms mk 1 C{$cas_mk} c\r\nC\r\n",
        "HD c{#}\r\n",
    );
    t.case("ms C stored", "mg mk v\r\n", "VA 1\r\nC\r\n");
    t.case("ms C already used", "ms mk 1 C{$cas_mk}\r\nz\r\n", EX);
    t.case("ms MR C wrong", "ms mk 1 MR C999999999999\r\nz\r\n", EX);
    t.case("ms MR C on a missing key", "ms nope 1 MR C1\r\nz\r\n", NF);
    t.case("ms MA C wrong", "ms mk 1 MA C999999999999\r\nz\r\n", EX);
    t.case("ms MA C0 does not compare", "ms mk 1 MA C0\r\n+\r\n", HD);
    t.case(
        "ms ME C on an existing key",
        "ms mk 1 ME C999999999999\r\nz\r\n",
        NS,
    );
    t.case(
        "ms c on a failure is c0",
        "ms mk 1 ME c\r\nz\r\n",
        "NS c0\r\n",
    );
    t.case("mg after the cas cases", "mg mk v\r\n", "VA 2\r\nC+\r\n");

    // ---- ms q, O, k
    t.case("ms q stored is silent", "ms mq 1 q\r\na\r\n", "");
    t.case("ms q NS is sent", "ms mq 1 q ME\r\nz\r\n", NS);
    t.case("ms q EX is sent", "ms mq 1 q C999999999999\r\nz\r\n", EX);
    t.case("ms q NF is sent", "ms nope 1 q C1\r\nz\r\n", NF);
    t.case("ms q with O and k is silent", "ms mq 1 q O5 k\r\nb\r\n", "");
    t.case("ms O k", "ms mq 1 O7 k\r\nc\r\n", "HD O7 kmq\r\n");
    t.case(
        "ms k O c order",
        "ms mq 1 k c O8\r\nd\r\n",
        "HD kmq c{#} O8\r\n",
    );
    t.case(
        "ms ignores flags it has no use for",
        "ms mq 1 v s t h l\r\ne\r\n",
        HD,
    );
    t.case("mg after ms q", "mg mq v\r\n", "VA 1\r\ne\r\n");

    // ---- base64 keys
    t.case("ms b", "ms bWs= 1 b k\r\nz\r\n", "HD kbWs= b\r\n");
    t.case(
        "mg a b-stored key echoes base64",
        "mg mk k v\r\n",
        "VA 1 kbWs= b\r\nz\r\n",
    );
    t.case(
        "get a b-stored key",
        "get mk\r\n",
        "VALUE mk 0 1\r\nz\r\nEND\r\n",
    );
    t.case("mg b", "mg bWs= b v s\r\n", "VA 1 s1\r\nz\r\n");
    t.case(
        "mg b miss echoes base64",
        "mg bm9wZQ== b k\r\n",
        "EN kbm9wZQ== b\r\n",
    );
    t.case(
        "me b",
        "me bWs= b\r\n",
        "ME bWs= exp=-1 la={#} cas={#} fetch=yes cls=1 size=62\r\n",
    );
    t.case(
        "me of a b-stored key",
        "me mk\r\n",
        "ME bWs= exp=-1 la={#} cas={#} fetch=yes cls=1 size=62\r\n",
    );
    t.case("ms b with a binary key", "ms AAEC 1 b\r\n0\r\n", HD);
    t.case(
        "mg a binary key",
        "mg AAEC b k v\r\n",
        "VA 1 kAAEC b\r\n0\r\n",
    );
    t.case("md b", "md AAEC b q\r\n", "");
    t.case("md b took effect", "mg AAEC b\r\n", EN);
    t.case(
        "base64 skips bytes outside its alphabet",
        "mg bW!s= b v\r\n",
        "VA 1\r\nz\r\n",
    );
    t.case("mg b that does not decode", "mg !!!! b\r\n", DECODE);
    t.case("mg b of a wrong length", "mg bWs b\r\n", DECODE);
    t.case(
        "ms b that does not decode swallows",
        "ms !!!! 2 b\r\nhi\r\n",
        DECODE,
    );
    t.case(
        "md b that does not decode",
        "md !!!! b\r\n",
        INVALID_OR_DUPLICATE,
    );
    t.case(
        "ma b that does not decode",
        "ma !!!! b\r\n",
        INVALID_OR_DUPLICATE,
    );
    t.case("me b that does not decode", "me !!!! b\r\n", BAD_FORMAT);
    t.case(
        "mg b key token over 250",
        format!("mg {} b\r\n", "QUFB".repeat(63)),
        BAD_FORMAT,
    );

    // ---- md
    t.case("ms for md", "ms mdk 1\r\nx\r\n", HD);
    t.case("md C wrong", "md mdk C999999999999\r\n", EX);
    t.case("md C0", "md mdk C0 q\r\n", EX);
    t.case("mg c for md", "mg mdk c\r\n", "HD c{#cas_md}\r\n");
    t.case(
        "md C right with O and k",
        "md mdk C{$cas_md} O1 k\r\n",
        "HD O1 kmdk\r\n",
    );
    t.case("md miss", "md mdk\r\n", NF);
    t.case(
        "md miss echoes k and O",
        "md mdk k O2\r\n",
        "NF kmdk O2\r\n",
    );
    t.case("md q miss is sent", "md mdk q\r\n", NF);
    t.case("ms for md q", "ms mdk 1\r\nx\r\n", HD);
    t.case("md q hit is silent", "md mdk q\r\n", "");
    t.case("md q took effect", "mg mdk\r\n", EN);
    t.case("md ignores flags it has no use for", "md mdk v s t\r\n", NF);

    // ---- ma
    t.case("ma miss", "ma mn\r\n", NF);
    t.case("ma miss echoes O and k", "ma mn O1 k\r\n", "NF O1 kmn\r\n");
    t.case("ma q miss is sent", "ma mn q\r\n", NF);
    t.case("ma N J creates", "ma mn N0 J10 v\r\n", "VA 2\r\n10\r\n");
    t.case("ma increments by 1", "ma mn v\r\n", "VA 2\r\n11\r\n");
    t.case("ma D", "ma mn D9 v\r\n", "VA 2\r\n20\r\n");
    t.case("ma MD", "ma mn MD D15 v\r\n", "VA 1\r\n5\r\n");
    t.case(
        "ma pads in place like decr",
        "get mn\r\n",
        "VALUE mn 0 2\r\n5 \r\nEND\r\n",
    );
    t.case("ma M- floors at 0", "ma mn M- D100 v\r\n", "VA 1\r\n0\r\n");
    t.case("ma M+", "ma mn M+ v\r\n", "VA 1\r\n1\r\n");
    t.case("ma MI", "ma mn MI v\r\n", "VA 1\r\n2\r\n");
    t.case("ma HD", "ma mn\r\n", HD);
    t.case("ma q hit is silent", "ma mn q\r\n", "");
    t.case("ma q v hit is silent", "ma mn q v\r\n", "");
    t.case(
        "ma t c k O",
        "ma mn t c k O3 v\r\n",
        "VA 1 t-1 c{#cas_mn} kmn O3\r\n6\r\n",
    );
    t.case("ma C right", "ma mn C{$cas_mn} v\r\n", "VA 1\r\n7\r\n");
    t.case("ma C already used", "ma mn C{$cas_mn}\r\n", EX);
    t.case(
        "ma C wrong echoes O",
        "ma mn C999999999999 O4\r\n",
        "EX O4\r\n",
    );
    t.case("incr after ma", "incr mn 3\r\n", "10\r\n");
    t.case("ma t before T", "ma mn t T100\r\n", "HD t-1\r\n");
    t.case("ma T then t", "ma mn T1000 t\r\n", "HD t{#}\r\n");
    t.case("ma T-1", "ma mn T-1\r\n", HD);
    t.case("ma T-1 expired it", "mg mn\r\n", EN);
    // A number that outgrows its item is stored in a new one; memcached
    // applies T to the old one, so the stored item keeps its TTL.
    t.case("set a short number", "set mgrow 0 0 2\r\n12\r\n", STORED);
    t.case(
        "ma T-1 on a growing number",
        "ma mgrow T-1 D100 v\r\n",
        "VA 3\r\n112\r\n",
    );
    t.case(
        "the grown number kept its TTL",
        "mg mgrow v t\r\n",
        "VA 3 t-1\r\n112\r\n",
    );
    t.case("ma q N creating is sent", "ma mq2 q N0 J1\r\n", HD);
    t.case(
        "ma N on an existing key ignores J",
        "ma mq2 N0 J50 v\r\n",
        "VA 1\r\n2\r\n",
    );
    t.case(
        "ma N t shows the vivify TTL",
        "ma mn2 N0 J3 t\r\n",
        "HD t-1\r\n",
    );
    t.case(
        "ma N-1 creates an expired item",
        "ma mn3 N-1 J5 v\r\n",
        "VA 1\r\n5\r\n",
    );
    t.case("ma N-1 item is gone", "mg mn3\r\n", EN);
    t.case("ma b k", "ma bW40 b k N0 J7 v\r\n", "VA 1 kbW40 b\r\n7\r\n");
    t.case(
        "set 2^64-1",
        "set mw 0 0 20\r\n18446744073709551615\r\n",
        STORED,
    );
    t.case("ma wraps at 2^64", "ma mw v\r\n", "VA 1\r\n0\r\n");
    t.case(
        "ma largest delta",
        "ma mw D18446744073709551615 v\r\n",
        "VA 20\r\n18446744073709551615\r\n",
    );
    t.case("ms letters", "ms ml 3\r\nabc\r\n", HD);
    t.case("ma non-numeric", "ma ml\r\n", NON_NUMERIC);
    t.case("ma q non-numeric is sent", "ma ml q\r\n", NON_NUMERIC);
    t.case("ma C wrong on non-numeric", "ma ml C999999999999\r\n", EX);
    t.case("ms empty for ma", "ms ml 0\r\n\r\n", HD);
    t.case("ma empty value", "ma ml\r\n", NON_NUMERIC);
    t.case(
        "ma C wrong on an empty value",
        "ma ml C999999999999\r\n",
        NON_NUMERIC,
    );
    t.case(
        "ma invalid mode",
        "ma mn MX\r\n",
        "CLIENT_ERROR invalid mode for ma M token\r\n",
    );
    t.case("ma long mode", "ma mn MII\r\n", INVALID_OR_DUPLICATE);
    t.case("ma bad D", "ma mn Dabc\r\n", INVALID_OR_DUPLICATE);
    t.case("ma negative D", "ma mn D-1\r\n", INVALID_OR_DUPLICATE);
    t.case(
        "ma D over 2^64-1",
        "ma mn D18446744073709551616\r\n",
        INVALID_OR_DUPLICATE,
    );
    t.case("ma bad J", "ma mn J-1\r\n", INVALID_OR_DUPLICATE);
    t.case("ma unknown flag", "ma mn zz\r\n", INVALID_OR_DUPLICATE);
    t.case("ma duplicate flag", "ma mn v v\r\n", INVALID_OR_DUPLICATE);

    // ---- me
    t.case("ms for me", "ms mme 2\r\nhi\r\n", HD);
    t.case(
        "me",
        "me mme\r\n",
        "ME mme exp=-1 la={#} cas={#} fetch=no cls=1 size=64\r\n",
    );
    t.case(
        "ms for me with flags and TTL",
        "ms mme 2 F1 T100\r\nhi\r\n",
        HD,
    );
    t.case(
        "me counts flags and shows exp",
        "me mme\r\n",
        "ME mme exp=-{#} la={#} cas={#} fetch=no cls=1 size=68\r\n",
    );
    t.case(
        "me ignores tokens after the key",
        "me mme x y\r\n",
        "ME mme exp=-{#} la={#} cas={#} fetch=no cls=1 size=68\r\n",
    );

    // ---- flag errors
    t.case("mg duplicate flag", "mg mk v v\r\n", DUPLICATE);
    t.case("mg non-ASCII flag", b"mg mk \xc3\r\n", DUPLICATE);
    t.case("mg invalid flag", "mg mk x\r\n", INVALID);
    t.case("mg E is not a 1.6.18 flag", "mg mk E5\r\n", INVALID);
    t.case("ms S is not a 1.6.18 flag", "ms mk 1 S1\r\nz\r\n", INVALID);
    t.case(
        "md x is not a 1.6.18 flag",
        "md mk x\r\n",
        INVALID_OR_DUPLICATE,
    );
    t.case("mg noreply is a bad flag", "mg mk noreply\r\n", INVALID);
    t.case("mg bad T", "mg mk Tabc\r\n", BAD_TOKEN);
    t.case("mg bad N", "mg mk N\r\n", BAD_TOKEN);
    t.case("mg bad R", "mg mk R1x\r\n", BAD_TOKEN);
    t.case("mg bad C", "mg mk C-1\r\n", BAD_TOKEN);
    t.case(
        "mg T wraps at 32 bits",
        "mg mk T4294967396 t\r\n",
        "HD t{#}\r\n",
    );
    t.case(
        "mg T over 64 bits",
        "mg mk T9223372036854775808\r\n",
        BAD_TOKEN,
    );
    t.case("mg T with a plus sign", "mg mk T+0 t\r\n", "HD t-1\r\n");
    t.case(
        "mg bad F keeps the default error",
        "mg mk Fx\r\n",
        BAD_FORMAT,
    );
    t.case(
        "mg bad F keeps the error before it",
        "mg mk Tx Fx\r\n",
        BAD_TOKEN,
    );
    t.case("mg the last error wins", "mg mk Tx b\r\n", DECODE);
    t.case("mg the last error wins again", "mg mk b Tx\r\n", BAD_TOKEN);
    t.case(
        "mg a duplicate stops at once",
        "mg mk Tx v v b\r\n",
        DUPLICATE,
    );
    t.case(
        "mg bad flags changed nothing",
        "mg mk v\r\n",
        "VA 1\r\nz\r\n",
    );
    t.case("ms bad F", "ms mk 1 Fx\r\nz\r\n", BAD_FORMAT);
    t.case("ms bad T", "ms mk 1 T1.5\r\nz\r\n", BAD_TOKEN);
    t.case("ms bad C", "ms mk 1 Cx\r\nz\r\n", BAD_TOKEN);
    t.case("ms duplicate flag", "ms mk 1 T1 T2\r\nz\r\n", DUPLICATE);
    t.case("ms errors stored nothing", "mg mk v\r\n", "VA 1\r\nz\r\n");
    t.case("md bad T", "md mk Tx\r\n", INVALID_OR_DUPLICATE);

    // ---- opaque over 32 bytes: mg and ma refuse it after taking effect
    t.case(
        "O of 32 bytes",
        format!("mg mk O{}\r\n", "9".repeat(31)),
        format!("HD O{}\r\n", "9".repeat(31)),
    );
    t.case(
        "mg O too long",
        format!("mg mk {opaque33} v\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case(
        "mg miss O too long",
        format!("mg nope {opaque33}\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case(
        "mg T before a long O took effect",
        format!("mg mk T-1 {opaque33}\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case("mg after T before a long O", "mg mk\r\n", EN);
    t.case(
        "md O too long",
        format!("md mf {opaque33}\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case("md O too long deleted nothing", "mg mf s\r\n", "HD s3\r\n");
    t.case(
        "ms O too long swallows",
        format!("ms mf 1 {opaque33}\r\nz\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case(
        "ms bad mode wins over a long O",
        format!("ms mf 1 {opaque33} MX\r\nz\r\n"),
        "CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    t.case("ms for ma O", "ms mo 1\r\n1\r\n", HD);
    t.case(
        "ma O too long",
        format!("ma mo {opaque33}\r\n"),
        OPAQUE_TOO_LONG,
    );
    t.case("ma O too long incremented", "mg mo v\r\n", "VA 1\r\n2\r\n");

    // ---- too many tokens: 17 flags after a key pass, 18 do not (16 and 17
    // after an ms length)
    let flags16 = "s t c f v k h l O1 q u P L I D5 J5";
    t.case(
        "mg 17 flags",
        format!("mg mf {flags16} Mx\r\n"),
        "VA 3 s3 t-1 c{#} f42 kmf h1 l{#} O1\r\nabc\r\n",
    );
    t.case(
        "mg 18 flags",
        format!("mg mf {flags16} Mx Cx\r\n"),
        "CLIENT_ERROR options flags are too long\r\n",
    );
    t.case(
        "md 18 flags",
        format!("md mf {flags16} Mx Cx\r\n"),
        "CLIENT_ERROR options flags too long\r\n",
    );
    t.case(
        "ma 18 flags",
        format!("ma mf {flags16} Mx Cx\r\n"),
        "CLIENT_ERROR options flags too long\r\n",
    );
    t.case(
        "ms 17 flags",
        format!("ms mf 1 {flags16} MS\r\n"),
        "CLIENT_ERROR options flags too long\r\n",
    );
    t.case("ms 17 flags is not swallowed", "z\r\n", ERROR);
    t.case("ms 16 flags", format!("ms mf 3 {flags16}\r\nabc\r\n"), "");
    t.case(
        "mg 30 tokens",
        format!("mg mf {}\r\n", "s ".repeat(29)),
        "CLIENT_ERROR options flags are too long\r\n",
    );

    // ---- keys
    t.case("ms key of 250", format!("ms {k250} 1\r\nx\r\n"), HD);
    t.case(
        "mg key of 250",
        format!("mg {k250} s v\r\n"),
        "VA 1 s1\r\nx\r\n",
    );
    t.case("mg key of 251", format!("mg {k251} s v\r\n"), BAD_FORMAT);
    t.case("md key of 251", format!("md {k251}\r\n"), BAD_FORMAT);
    t.case("ma key of 251", format!("ma {k251}\r\n"), BAD_FORMAT);
    t.case("me key of 251", format!("me {k251}\r\n"), BAD_FORMAT);
    t.case(
        "ms key of 251 does not swallow",
        format!("ms {k251} 1\r\nmn\r\n"),
        format!("{BAD_FORMAT}{MN}"),
    );

    // ---- ms lengths and data blocks
    t.case("ms without length", "ms mk\r\n", BAD_FORMAT);
    t.case(
        "ms length and F with a plus sign",
        "ms mp +1 F+5\r\nx\r\n",
        HD,
    );
    t.case("mg after plus signs", "mg mp f v\r\n", "VA 1 f5\r\nx\r\n");
    t.case(
        "ms length wraps at 32 bits",
        "ms mp 4294967297\r\ny\r\n",
        HD,
    );
    t.case(
        "mg after a wrapped length",
        "mg mp f v\r\n",
        "VA 1 f0\r\ny\r\n",
    );
    t.case("ms F-1", "ms mp 1 F-1\r\nz\r\n", BAD_FORMAT);
    t.case("ms bad length", "ms mk abc\r\n", BAD_FORMAT);
    t.case("ms negative length", "ms mk -1\r\n", BAD_FORMAT);
    t.case(
        "ms length over INT_MAX-2",
        "ms mk 2147483646 MX\r\n",
        BAD_FORMAT,
    );
    t.case(
        "ms bad data chunk",
        "ms mk 2\r\nabcd\r\n",
        format!("{BAD_CHUNK}{ERROR}"),
    );
    t.case(
        "bytes after a bad ms chunk are the next command",
        "ms mk 2 q\r\nabcdmg mk v\r\n",
        format!("{BAD_CHUNK}{EN}"),
    );
    let swallowed = "mg mk v\r\n".repeat(223); // 2007 bytes
    t.case("ms for too large", "ms big 1\r\nx\r\n", HD);
    t.case(
        "ms too large",
        format!("ms big {} MA\r\n{swallowed}\r\n", swallowed.len()),
        TOO_LARGE,
    );
    t.case(
        "ms too large removed the old value in any mode",
        "mg big\r\n",
        EN,
    );
    t.case(
        "ms q too large is sent",
        format!("ms big {} q\r\n{swallowed}\r\n", swallowed.len()),
        TOO_LARGE,
    );
    t.case(
        "ms refused by its flags swallows its data",
        format!("ms big {} Tx\r\n{swallowed}\r\n", swallowed.len()),
        BAD_TOKEN,
    );

    // ---- quiet mode, closed by mn
    t.case(
        "quiet pipeline",
        "mg q1 q v\r\nms q1 1 q\r\na\r\nmg q1 q v\r\nms q1 1 q ME\r\nb\r\nmd q1 q\r\n\
         md q1 q\r\nma q1 q\r\nma q2 q N0 J4\r\nma q2 q\r\nmg q2 q v\r\nmn\r\n",
        "VA 1\r\na\r\nNS\r\nNF\r\nNF\r\nHD\r\nVA 1\r\n5\r\nMN\r\n",
    );

    // ---- classic and meta on one connection
    t.case("set for meta", "set cl 5 0 3\r\nabc\r\n", STORED);
    t.case(
        "mg of a set item",
        "mg cl v f s\r\n",
        "VA 3 f5 s3\r\nabc\r\n",
    );
    t.case("mg c for classic cas", "mg cl c\r\n", "HD c{#cas_cl}\r\n");
    t.case(
        "cas with an mg cas",
        "cas cl 6 0 1 {$cas_cl}\r\nx\r\n",
        STORED,
    );
    t.case(
        "gets then ms C",
        "gets cl\r\n",
        "VALUE cl 6 1 {#cas_cl2}\r\nx\r\nEND\r\n",
    );
    t.case("ms C with a gets cas", "ms cl 1 C{$cas_cl2}\r\ny\r\n", HD);
    t.case("append to an ms item", "append cl 0 0 1\r\nz\r\n", STORED);
    t.case(
        "get after ms and append",
        "get cl\r\n",
        "VALUE cl 0 2\r\nyz\r\nEND\r\n",
    );
    t.case("touch then mg t", "touch cl 100\r\n", "TOUCHED\r\n");
    t.case("mg t after touch", "mg cl t\r\n", "HD t{#}\r\n");
    t.case(
        "gat then mg t",
        "gat 0 cl\r\n",
        "VALUE cl 0 2\r\nyz\r\nEND\r\n",
    );
    t.case("mg t after gat 0", "mg cl t\r\n", "HD t-1\r\n");
    t.case("delete then mg", "delete cl\r\n", "DELETED\r\n");
    t.case("mg after delete", "mg cl\r\n", EN);
    t.case(
        "classic and meta in one write",
        "set cl 0 0 1\r\n1\r\nma cl v\r\nincr cl 1\r\nmg cl v\r\nmn\r\n",
        "STORED\r\nVA 1\r\n2\r\n3\r\nVA 1\r\n3\r\nMN\r\n",
    );
    t.case("flush_all", "flush_all\r\n", OK);
    t.case("mg after flush_all", "mg mf\r\n", EN);
    t.case("get after flush_all", "get mk\r\n", END);
    t.case("final mn", "mn\r\n", MN);
    t
}
