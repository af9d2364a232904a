/* The C ABI of the example downstream crate (src/lib.rs). Written by hand: two functions. */

#ifndef FERRY_DOWNSTREAM_H
#define FERRY_DOWNSTREAM_H

#include "ferry.h"

/* Makes frame `seq` of `len` bytes (byte i is (seq + i) % 251), lends it to ferry's table without a
 * copy and stores its id and view in *view_out. The caller owns the id and releases it once. */
FerryStatus downstream_make_frame(uint64_t seq, size_t len, FerryView *view_out);

/* How many frames the crate has lent since the process started. */
uint64_t downstream_frames_made(void);

#endif /* FERRY_DOWNSTREAM_H */
