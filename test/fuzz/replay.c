/*
 * replay: run a libFuzzer harness (test/fuzz/fuzz_*.c) over the files of a
 * corpus, without libFuzzer: `make units` links each harness with this
 * main() in the sanitizer build, and scripts/run-tests replays
 * test/fuzz/corpus/NAME/ through it on every test run, so that a harness
 * keeps building and the inputs that once found a bug keep passing.
 * `make fuzz` builds the same harnesses with clang's libFuzzer to look for
 * new ones.
 *
 * Usage: replay FILE|DIR...   Exit status 0 when every input ran (a failed
 * check aborts), 1 when a file could not be read or none was given.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
        FILE *f = fopen(path, "rb");
        unsigned char *data = NULL;
        size_t len = 0, cap = 0, n;

        if (f == NULL) {
                perror(path);
                return -1;
        }
        do {
                if (len == cap) {
                        cap = cap ? cap * 2 : 4096;
                        data = realloc(data, cap);
                        if (data == NULL) {
                                perror("realloc");
                                exit(1);
                        }
                }
                n = fread(data + len, 1, cap - len, f);
                len += n;
        } while (n > 0);
        if (ferror(f)) {
                perror(path);
                fclose(f);
                free(data);
                return -1;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(data, len);
        free(data);
        return 0;
}

static int replay_compare(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files of dir, in name order (a run is the same run every time). */
static int replay_dir(const char *dir, unsigned *count)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        char **names = NULL;
        size_t n = 0;
        int r = 0;

        if (d == NULL) {
                perror(dir);
                return -1;
        }
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                        continue;
                names = realloc(names, (n + 1) * sizeof(*names));
                if (names == NULL) {
                        perror("realloc");
                        exit(1);
                }
                names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
                if (names[n] == NULL) {
                        perror("malloc");
                        exit(1);
                }
                sprintf(names[n], "%s/%s", dir, e->d_name);
                n++;
        }
        closedir(d);
        qsort(names, n, sizeof(*names), replay_compare);
        for (size_t i = 0; i < n; i++) {
                if (replay_file(names[i]) != 0)
                        r = -1;
                else
                        (*count)++;
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv)
{
        unsigned count = 0;
        int r = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;

                if (stat(argv[i], &st) != 0) {
                        perror(argv[i]);
                        r = -1;
                } else if (S_ISDIR(st.st_mode)) {
                        if (replay_dir(argv[i], &count) != 0)
                                r = -1;
                } else if (replay_file(argv[i]) != 0) {
                        r = -1;
                } else {
                        count++;
                }
        }
        printf("%s: %u inputs replayed\n", argv[0], count);
        if (count == 0) {
                fprintf(stderr, "%s: no input (usage: %s FILE|DIR...)\n", argv[0],
                        argv[0]);
                return 1;
        }
        return r == 0 ? 0 : 1;
}
