"""``thumbnails``: resize every uploaded image, four at a time, then summarise.

What it shows: the built-in ``map`` node. It evaluates ``context.images`` to a list, runs the
``resize_image`` implementation once per item (at most ``concurrency`` at a time, each with the
map's retry policy), and outputs the results in item order, whatever order they finished in.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flowcraft_core import NodeContext, NodeResult

SAMPLE_CONTEXT: dict[str, Any] = {
    "images": [
        {"key": "uploads/beach.jpg", "width": 4032, "height": 3024},
        {"key": "uploads/city.jpg", "width": 3000, "height": 2000},
        {"key": "uploads/dog.png", "width": 1200, "height": 1600},
        {"key": "uploads/logo.png", "width": 512, "height": 512},
        {"key": "uploads/team.jpg", "width": 6000, "height": 4000},
        {"key": "uploads/map.png", "width": 2048, "height": 1024},
    ]
}


async def resize_image(ctx: NodeContext) -> NodeResult:
    """Fit one image into ``maxSide`` x ``maxSide``, keeping its aspect ratio.

    The short ``asyncio.sleep`` stands in for real I/O (download, resize, upload) so the map's
    concurrency actually overlaps work; ``maxSide`` comes from the map's ``params``.
    """
    image: dict[str, Any] = ctx.input
    max_side = int(ctx.params.get("maxSide", 256))
    scale = min(1.0, max_side / max(image["width"], image["height"]))
    await asyncio.sleep(0.01)
    stem = image["key"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return NodeResult(
        output={
            "source": image["key"],
            "thumbnail": f"thumbs/{stem}-{max_side}.jpg",
            "width": round(image["width"] * scale),
            "height": round(image["height"] * scale),
        }
    )


def summarize(ctx: NodeContext) -> NodeResult:
    """Count the thumbnails and list them (input: the map's ordered list of results)."""
    thumbnails: list[dict[str, Any]] = ctx.input
    return NodeResult(
        output={"count": len(thumbnails), "thumbnails": [t["thumbnail"] for t in thumbnails]}
    )


REGISTRY: dict[str, Any] = {"resize_image": resize_image, "summarize_thumbnails": summarize}

BLUEPRINT: dict[str, Any] = {
    "id": "thumbnails",
    "metadata": {"version": "1", "description": "scatter/gather with the map built-in"},
    "nodes": [
        {
            "id": "resize_all",
            "uses": "map",
            "params": {
                "items": "context.images",
                "uses": "resize_image",
                "concurrency": 4,
                "params": {"maxSide": 256},
                "maxRetries": 1,
            },
        },
        {"id": "summarize", "uses": "summarize_thumbnails"},
    ],
    "edges": [{"source": "resize_all", "target": "summarize"}],
}
