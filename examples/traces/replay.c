/*
 * replay.c: an allocation trace through the C library's malloc and free, timed: the native
 * anchor that `vmalloc replay` prints vmalloc's speed against (src/cli/native.ts compiles this
 * file with the C compiler it finds, and writes the trace for it).
 *
 *   cc -O2 -o replay replay.c && ./replay OPS_FILE ROUNDS
 *
 * OPS_FILE, little-endian: uint32 operations, uint32 slots, then per operation an int64 size
 * (-1: a free) and a uint32 slot. The whole file is read first; then each of ROUNDS rounds
 * replays every operation (malloc(size) into its slot, or free of the slot) and frees what is
 * left, timed with CLOCK_MONOTONIC. Prints one line per round: "round R ops N seconds S".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct op { int64_t size; uint32_t slot; };

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc != 3) { fprintf(stderr, "usage: replay OPS_FILE ROUNDS\n"); return 2; }
	FILE *f = fopen(argv[1], "rb");
	uint32_t n, slots;
	if (!f || fread(&n, 4, 1, f) != 1 || fread(&slots, 4, 1, f) != 1) { perror(argv[1]); return 1; }
	struct op *ops = malloc((size_t)n * sizeof *ops);
	void **live = calloc(slots ? slots : 1, sizeof *live);
	for (uint32_t i = 0; i < n; i++)
		if (fread(&ops[i].size, 8, 1, f) != 1 || fread(&ops[i].slot, 4, 1, f) != 1 || ops[i].slot >= slots) {
			fprintf(stderr, "%s: operation %u is cut or names slot %u of %u\n", argv[1], i + 1, ops[i].slot, slots);
			return 1;
		}
	fclose(f);
	for (int r = 1, rounds = atoi(argv[2]); r <= rounds; r++) {
		double t0 = now();
		for (uint32_t i = 0; i < n; i++) {
			if (ops[i].size >= 0) live[ops[i].slot] = malloc((size_t)ops[i].size);
			else { free(live[ops[i].slot]); live[ops[i].slot] = 0; }
		}
		double t1 = now();
		for (uint32_t s = 0; s < slots; s++) { free(live[s]); live[s] = 0; }
		printf("round %d ops %u seconds %.9f\n", r, n, t1 - t0);
	}
	return 0;
}
