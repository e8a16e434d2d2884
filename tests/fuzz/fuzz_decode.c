/* fuzz_decode.c: libFuzzer target for decode_image (every format, v2 limits)
 * and, on success, crop and rotate. The last input byte also picks whether
 * a DCT-scaled decode is requested, so both paths get exercised. */
#include "index/image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct decode_limits lim = {65, 4095, 0};
    struct image img, crop, rot;
    if (size && (data[size - 1] & 1))
        lim.target_side = 80;
    if (decode_image(data, size, &lim, &img) != DECODE_OK) {
        if (img.rgb)
            abort(); /* failure must leave nothing to free */
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || img.width > img.orig_width ||
        img.height > img.orig_height || img.orig_width > 4095 || img.orig_height > 4095)
        abort();
    /* Touch every pixel so ASan sees the whole buffer was allocated. */
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)img.width * img.height * 3; i += 97)
        sum += img.rgb[i];
    (void)sum;

    int b0 = size > 4 ? data[1] : 0, b1 = size > 4 ? data[2] : 0;
    int x1 = img.orig_width * b0 / 256, y1 = img.orig_height * b1 / 256;
    int rc = image_crop(&img, x1, y1, x1 + 15 + b1, y1 + 15 + b0, &crop);
    if (rc == 0) {
        if (image_rotate(&crop, (int)(size % 4), &rot) != 0)
            abort();
        image_free(&rot);
        image_free(&crop);
    } else if (rc != -1 || crop.rgb) {
        abort();
    }
    image_free(&img);
    return 0;
}
