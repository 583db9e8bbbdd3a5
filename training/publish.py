"""Publish a saved pipeline folder to the Hugging Face Hub, as a repository plain diffusers loads.

    python -m training.publish models/ddpm-pixel --repo-id user/mnist-ddpm [--private] [--source-url URL]
    python -m training.publish models/ddpm-pixel --repo-id user/mnist-ddpm --dry-run --dry-run-dir /tmp/upload
    python -m training.publish --refresh-bundled models/     # after pipelines/ or the cards changed: restage them
    python -m training.publish --code-lines models/          # the code a reviewer reads per bundled repo

The token comes from HF_TOKEN or `hf auth login`; it is never written anywhere.
"""

from __future__ import annotations

import argparse
import sys

from .hub import bundled_folders, code_lines, list_in_space_readme, publish, refresh_bundled


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="a saved pipeline folder (model_index.json, safetensors weights)")
    parser.add_argument("--repo-id", help="the Hub repo, 'user/name'")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--dry-run", action="store_true", help="write the folder that would be uploaded; upload nothing"
    )
    parser.add_argument("--dry-run-dir", default="hub-upload", help="where --dry-run writes (must be new or empty)")
    parser.add_argument("--source-url", help="where the project's source lives, linked from the model card")
    parser.add_argument(
        "--refresh-bundled",
        metavar="MODELS_DIR",
        help="restage every bundled folder of MODELS_DIR in place (code, card, model_index.json); publish nothing",
    )
    parser.add_argument(
        "--code-lines",
        metavar="MODELS_DIR",
        help="print the .py files and lines of each bundled folder; publish nothing",
    )
    parser.add_argument(
        "--space-readme",
        help="after publishing, add the repo to this Space README's `models:` front matter (e.g. README.md)",
    )
    args = parser.parse_args(argv)
    if args.refresh_bundled:
        folders = refresh_bundled(args.refresh_bundled)
        print(f"Restaged {len(folders)} folders: {', '.join(str(f) for f in folders)}")
        return args.refresh_bundled
    if args.code_lines:
        for folder in bundled_folders(args.code_lines):
            lines = code_lines(folder)
            print(f"{folder.name}: {len(lines)} files, {sum(lines.values())} lines ({', '.join(lines)})")
        return args.code_lines
    if not args.folder or not args.repo_id:
        parser.error("a folder and --repo-id are needed to publish")
    result = publish(
        args.folder,
        args.repo_id,
        private=args.private,
        dry_run_dir=args.dry_run_dir if args.dry_run else None,
        source_url=args.source_url,
    )
    print(f"Dry run: wrote the upload to {result}" if args.dry_run else f"Published {args.folder} to {result}")
    if args.space_readme and not args.dry_run:
        list_in_space_readme(args.space_readme, args.repo_id)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
