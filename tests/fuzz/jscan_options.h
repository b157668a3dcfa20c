/*
 * jscan_options.h - the scanner options both jscan fuzz targets read from
 * their first input byte (so one corpus seeds the other): bit 0
 * allow_nan, bit 1 reject_duplicate_keys, bit 2 a small max_depth.
 */
#ifndef JSCAN_OPTIONS_H
#define JSCAN_OPTIONS_H

#include <stdint.h>
#include <string.h>

#include "sf_jscan.h"

static inline sf_jscan_options fuzz_jscan_options(uint8_t byte)
{
	sf_jscan_options o;

	memset(&o, 0, sizeof(o));
	o.allow_nan = byte & 1;
	o.reject_duplicate_keys = (byte >> 1) & 1;
	o.max_depth = byte & 4 ? 5 : 64;
	return o;
}

#endif
