// libzstd: one independent frame per archive chunk.
#include <zstd.h>
#include <zstd_errors.h>
