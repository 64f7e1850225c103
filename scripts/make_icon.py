"""Draw the pack's registry icon, web/icon.png (256 x 256).

    python scripts/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "web" / "icon.png"
SIZE = 256
SCALE = 4  # drawn large, then reduced, for smooth edges


def main() -> None:
    big = SIZE * SCALE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle([0, 0, big - 1, big - 1], radius=48 * SCALE, fill=(32, 33, 36, 255))
    # Three LoRA "links" flowing into one node, in the link colours of the example thumbnails.
    for i, colour in enumerate([(190, 120, 240), (240, 170, 70), (100, 181, 246)]):
        y = (70 + i * 38) * SCALE
        draw.line([(28 * SCALE, y), (96 * SCALE, y), (128 * SCALE, 110 * SCALE)], fill=colour, width=10 * SCALE,
                  joint="curve")
        draw.ellipse([20 * SCALE, y - 12 * SCALE, 44 * SCALE, y + 12 * SCALE], fill=colour)
    draw.rounded_rectangle([118 * SCALE, 52 * SCALE, 232 * SCALE, 170 * SCALE], radius=16 * SCALE,
                           fill=(53, 53, 56, 255), outline=(222, 222, 222, 255), width=4 * SCALE)
    draw.text((175 * SCALE, 111 * SCALE), "F2", font=ImageFont.load_default(size=56 * SCALE),
              fill=(240, 240, 240), anchor="mm")
    draw.text((128 * SCALE, 212 * SCALE), "LoRA", font=ImageFont.load_default(size=48 * SCALE),
              fill=(159, 212, 159), anchor="mm")
    image.resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(OUTPUT, optimize=True)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
