/*
 * sf_unpack.h - recreating the packed source tree from a store.
 *
 * sf_unpack() writes the store's source/ tree into DEST (which must not
 * exist): every file byte for byte (its XXH64 fingerprint checked), every
 * folder including empty ones, every symlink, with the original permission
 * bits and modification times. Folder modes and times are applied last,
 * deepest first, so read-only folders can still be filled.
 */
#ifndef SF_UNPACK_H
#define SF_UNPACK_H

#include "sf_error.h"
#include "sf_store.h"

sf_err sf_unpack(sf_store *store, const char *dest, sf_error *err);

#endif
