/* Unit tests of the small helpers: paths, hex, UTF-8 validation. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sf_util.h"

int main(void)
{
	char *s;
	uint64_t v = 0;

	s = sf_path_join("a", "b");
	CHECK(s && strcmp(s, "a/b") == 0, "join adds one slash");
	free(s);
	s = sf_path_join("a/", "b");
	CHECK(s && strcmp(s, "a/b") == 0, "join does not double a slash");
	free(s);
	CHECK(sf_parse_hex64("00000000000000ff", &v) && v == 255, "hex64 parses");
	CHECK(!sf_parse_hex64("00000000000000f", &v), "hex64 needs 16 digits");
	CHECK(!sf_parse_hex64("00000000000000fg", &v), "hex64 rejects non-hex");
	CHECK(!sf_parse_hex64("00000000000000ff0", &v), "hex64 rejects trailing digits");
	CHECK(sf_parse_hex64("0123456789abcdef", &v) && v == UINT64_C(0x0123456789abcdef), "hex64: every lower-case digit");
	CHECK(sf_parse_hex64("FEDCBA9876543210", &v) && v == UINT64_C(0xfedcba9876543210), "hex64: upper case");
	CHECK(!sf_parse_hex64("0000000000000/00", &v) && !sf_parse_hex64("0000000000000:00", &v) &&
	      !sf_parse_hex64("@000000000000000", &v) && !sf_parse_hex64("G000000000000000", &v) &&
	      !sf_parse_hex64("`000000000000000", &v) && !sf_parse_hex64("g000000000000000", &v),
	      "hex64 rejects the bytes around the digit ranges");
	s = sf_hex_encode("\xff\x01z", 3);
	CHECK(s && strcmp(s, "ff017a") == 0, "hex encode");
	free(s);
	s = sf_hex_decode("ff017a");
	CHECK(s && memcmp(s, "\xff\x01z", 4) == 0, "hex decode");
	free(s);
	CHECK(sf_hex_decode("f") == NULL, "hex decode rejects odd length");
	CHECK(sf_hex_decode("0061") == NULL, "hex decode rejects a NUL byte");
	CHECK(sf_utf8_valid("caf\xc3\xa9 \xe6\x9d\xb1 \xf0\x9f\x98\x80", 14), "valid UTF-8");
	CHECK(!sf_utf8_valid("\xc0\xaf", 2), "overlong rejected");
	CHECK(!sf_utf8_valid("\xed\xa0\x80", 3), "encoded surrogate rejected");
	CHECK(!sf_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF rejected");
	CHECK(!sf_utf8_valid("\xe6\x9d", 2), "truncated sequence rejected");
	CHECK(!sf_utf8_valid("\xff", 1), "invalid byte rejected");
	return check_done();
}
