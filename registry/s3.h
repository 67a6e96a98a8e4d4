/*
 * s3.h - a small S3 client (path-style requests, SigV4 by libcurl) for the
 * artifact store in an object store (artifacts_s3.c) and, next, mcached's
 * loader. Internal to mcache; not a general S3 SDK.
 *
 * WHERE AND WHO. The endpoint, region and keys come from the variables every
 * S3 tool reads (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY), or from a credentials file of the same KEY=VALUE
 * lines: a regular file, not a symbolic link, owned by this user or root,
 * that only its owner may read or write (mode 0600 or stricter); it is read
 * at each mc_s3_open. The secret is never part of a message.
 *
 * ERRORS. Every call returns 0 or a negative MC_E* code with mc_err()'s
 * message naming the operation, s3://bucket/key, the HTTP status and S3's
 * error code (403 SignatureDoesNotMatch...), and what to do. A missing
 * object or bucket is MC_ENOENT, a refusal MC_EPERM, anything else MC_EIO.
 *
 * THREADS. A handle is used by one thread at a time; parallelism is inside
 * (curl multi), not across callers. Different handles are independent.
 * The exception: mc_s3_read, mc_s3_get_stream, mc_s3_get and mc_s3_head
 * may run on several threads at once on one handle (mcache-serve's
 * downloads and verify do). Each call makes and frees its own curl easy and
 * multi handles (no connection cache or share handle outlives a call) and
 * reads only what mc_s3_open set (endpoint, region, keys, bucket); the
 * retry counter is atomic, curl_global_init runs once (pthread_once), and
 * errors go to mc_err()'s per-thread message. Not concurrently with
 * mc_s3_set_cancel (it writes the handle) nor mc_s3_close. A change that
 * adds shared mutable state here (a kept connection, a counter in the
 * handle) must keep these calls safe together, or say otherwise.
 *
 * LIBCURL 7.88's SIGV4 (../shared/FLEET.md): it does not send
 * x-amz-content-sha256, so every request carries UNSIGNED-PAYLOAD; it signs
 * the query string as written, so every query here is built sorted, every
 * parameter with '=' and every value percent-encoded.
 */
#ifndef MCACHE_REGISTRY_S3_H
#define MCACHE_REGISTRY_S3_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc_s3;
struct mc_s3_upload;

/*
 * A client for bucket. creds_file: NULL (the AWS_* variables) or a 0600
 * file with AWS_ENDPOINT_URL=..., AWS_ACCESS_KEY_ID=... lines (the
 * variables fill in what it lacks). Nothing is contacted yet.
 */
int mc_s3_open(const char *bucket, const char *creds_file, struct mc_s3 **out);
void mc_s3_close(struct mc_s3 *s);

/* Whether b[0..n) is an S3 bucket name: 3 to 63 of a-z 0-9 . -, alphanumeric at both ends, no "..". */
bool mc_s3_bucket_ok(const char *b, size_t n);

/*
 * Parse and check an --artifacts value, s3://BUCKET[/PREFIX][/]: the bucket
 * into bucket, the prefix (without a trailing '/') as prefix[0..prefix_len)
 * into url. Refused (MC_EINVAL, a message saying what to write, never showing
 * a value that may hold credentials): another scheme, credentials
 * (s3://KEY:SECRET@...), a bucket that is not a bucket name, a prefix with an
 * empty, . or .. segment, ? # % or a control byte (curl would normalise the
 * path: requests would go to other keys, or another bucket).
 */
int mc_s3_url_parse(const char *url, char bucket[64], const char **prefix, size_t *prefix_len);

/* Would mc_s3_open accept creds_file? 0, or the error it would give (checks at start). */
int mc_s3_creds_check(const char *creds_file);
const char *mc_s3_bucket(const struct mc_s3 *s);

/* Create the bucket (tests, first setup); an existing one of ours is fine. */
int mc_s3_create_bucket(struct mc_s3 *s);

/* One PUT of n bytes with its Content-Length (small objects: markers, refs). */
int mc_s3_put(struct mc_s3 *s, const char *key, const void *buf, size_t n);

/* HEAD: *size (may be NULL) gets the object's length; MC_ENOENT if absent. */
int mc_s3_head(struct mc_s3 *s, const char *key, uint64_t *size);

/* GET a small object whole into a malloc'd buffer (*out, *n; NUL-terminated). */
int mc_s3_get(struct mc_s3 *s, const char *key, char **out, size_t *n);

/*
 * Read n bytes at off of key into buf, as parallel ranged GETs of part
 * bytes (0: 8 MiB) at most conc (0: 8) at a time, each range retried
 * (5 tries over ~7 s) on a network error or a 5xx, written straight into its place in
 * buf. All or nothing: on failure buf's contents are unspecified. This is
 * the call mcached's loader makes into its arena extent.
 */
int mc_s3_read(struct mc_s3 *s, const char *key, uint64_t off, void *buf, size_t n, size_t part,
               unsigned conc);

/*
 * mc_s3_read on s stops (MC_EIO, "cancelled") within a second once *flag is
 * set (NULL: never): how mcached abandons a download at shutdown or removal.
 */
void mc_s3_set_cancel(struct mc_s3 *s, const atomic_bool *flag);

/*
 * Until mc_s3_deadline(s, 0): each simple request of s (put, head, get,
 * delete, copy, list), retries included, ends within ms milliseconds of
 * this call, failing as the last try did. For what runs under the
 * registry's writer lock, so that a store that does not answer does not
 * hold it (artifacts_s3.c's intent_recover).
 */
void mc_s3_deadline(struct mc_s3 *s, unsigned ms);

/* GET the whole object in order, handing each chunk to fn (non-zero stops it). */
int mc_s3_get_stream(struct mc_s3 *s, const char *key,
                     int (*fn)(void *arg, const void *buf, size_t n), void *arg);

/* DELETE (an absent key is fine: S3 answers 204 either way). */
int mc_s3_delete(struct mc_s3 *s, const char *key);

/* Server-side copy of src to dst in the same bucket (objects up to 5 GiB). */
int mc_s3_copy(struct mc_s3 *s, const char *src, const char *dst);

/*
 * The same for any size (size: src's, > 0), in ranges of part bytes
 * (0: 1 GiB) by UploadPartCopy, one after another, inside the store. Signed
 * by hand: libcurl 7.88 orders its two x-amz-copy-source headers wrongly.
 */
int mc_s3_copy_parts(struct mc_s3 *s, const char *src, const char *dst, uint64_t size,
                     uint64_t part);

/* Each object under prefix: fn(arg, key, size, last_modified); non-zero stops. */
int mc_s3_list(struct mc_s3 *s, const char *prefix,
               int (*fn)(void *arg, const char *key, uint64_t size, const char *modified),
               void *arg);

/* Each multipart upload in progress under prefix: fn(arg, key, upload_id, initiated). */
int mc_s3_list_uploads(struct mc_s3 *s, const char *prefix,
                       int (*fn)(void *arg, const char *key, const char *upload_id,
                                 const char *initiated),
                       void *arg);

/* Abort a multipart upload by id (the sweep of a dead push's upload). */
int mc_s3_abort_upload(struct mc_s3 *s, const char *key, const char *upload_id);

/*
 * A multipart upload to key, written in order like a file: parts of
 * part_size bytes (0: 16 MiB; S3's minimum is 5 MiB but the last) go up
 * while the next fill, at most conc (0: 4) at a time, each retried (5
 * tries over ~7 s). Memory stays conc * part_size whatever the object's size.
 * complete() makes the object visible, whole, at once; abort() (also after
 * a failure) lets S3 free the parts. Every begun upload ends in exactly one
 * of complete (success) or abort, which frees u.
 */
int mc_s3_upload_begin(struct mc_s3 *s, const char *key, size_t part_size, unsigned conc,
                       struct mc_s3_upload **out);
int mc_s3_upload_write(struct mc_s3_upload *u, const void *buf, size_t n);
int mc_s3_upload_complete(struct mc_s3_upload *u);
void mc_s3_upload_abort(struct mc_s3_upload *u);
const char *mc_s3_upload_id(const struct mc_s3_upload *u);

/* The same, pulling from a reader: read(arg, buf, cap) returns bytes (0 at the end) or < 0. */
int mc_s3_upload_from(struct mc_s3 *s, const char *key, size_t part_size, unsigned conc,
                      long (*read)(void *arg, void *buf, size_t cap), void *arg);

/* How many transfers this process has sent again after a failure (tests, stats). */
uint64_t mc_s3_retries(void);

#endif
