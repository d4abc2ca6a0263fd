"""Checks beyond the schema, and the typed Shot they produce.

The schema has already vouched for every key and type; here the values are checked against
each other and against the disk: images exist and decode, edits resolve without cycles,
outputs stay inside the shot's folder, and sizes, durations and settings make sense together.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..profiles import PROFILES
from .errors import Mark, Report, display_path, suggest, suggest_file
from .files import FileProblem, resolve
from .images import ImageProblem, probe_image
from .lora import file_sha256, lora_problem
from .model import (IMAGE_FORMATS, VIDEO_FORMATS, Control, Edit, Experimental, FlowShift,
                    ImageInfo, ImageRef, InputVideo, Lora, ModelSettings, ModelSpec, Output, Post,
                    RopeScalingSpec, Sampling, Section, Shot)
from .schema import check_schema
from .setting_schedules import sampling_schedules, scheduled_number, shot_schedules
from .templates import Expansion
from .videos import check_extension, read_input_video, start_image, video_fps, video_size
from .yaml_loader import Node

DEFAULTS: dict[str, Any] = {
    "model": "framepack",
    "size": "auto",
    "fps": 30,
    "seed": 31337,
    "steps": 25,
    "guidance": 10.0,
    "cfg": 1.0,
    "negative_prompt": "",
    "window": 9,
    "sampler": "unipc",
    "noise": "per-window",
    "flow_shift": "balanced",
    "teacache": False,
    "end_image_strength": 1.0,
}
TEACACHE_DEFAULT_THRESHOLD = 0.15
MAX_SHOT_SECONDS = 3600.0
MODEL_COMPONENTS = ("path", "transformer", "text_encoder", "text_encoder_2", "tokenizer",
                    "tokenizer_2", "image_encoder", "feature_extractor", "vae")

# FramePack's 640-resolution buckets as (height, width).
BUCKETS_640 = [(416, 960), (448, 864), (480, 832), (512, 768), (544, 704), (576, 672),
               (608, 640), (640, 608), (672, 576), (704, 544), (768, 512), (832, 480),
               (864, 448), (960, 416)]


def build_shot(exp: Expansion, report: Report, output_root: Path | None = None, *,
               root_shown: str | None = None) -> Shot | None:
    """Check one expanded shot. Adds diagnostics to ``report``; returns None if any error.
    ``root_shown``: how messages name ``output_root`` (its URL, when it stages one)."""
    errors_before = report.made
    check_schema(exp.doc, report)
    if report.made > errors_before:
        return None
    shot = _Checker(exp, report, output_root, root_shown).build()
    if shot is None or report.made > errors_before:
        return None
    from ..plan.window_values import resolve_schedules  # the windows' frames are the plan's

    return resolve_schedules(shot, report)


class _Checker:
    def __init__(self, exp: Expansion, report: Report, output_root: Path | None,
                 root_shown: str | None):
        self.exp = exp
        self.doc = exp.doc
        self.report = report
        self.root = resolve(output_root or resolve(exp.source).parent)
        self.root_given = output_root is not None
        self.root_shown = root_shown or display_path(self.root)
        self.edit_names = [e.value["name"].value for e in self._edit_nodes()]

    # ------------------------------------------------------------ helpers

    def value(self, key: str, node: Node | None = None) -> Any:
        node = node if node is not None else self.doc
        child = node.get(key)
        return child.value if child is not None else None

    def setting(self, key: str, *nodes: Node | None) -> Any:
        """The first of ``nodes`` that sets ``key``, else the shot's, else the default."""
        for node in (*nodes, self.doc):
            if node is not None and node.get(key) is not None:
                return node.get(key).plain()
        return DEFAULTS.get(key)

    def mark(self, key: str, node: Node | None = None) -> Mark:
        node = node if node is not None else self.doc
        child = node.get(key)
        return child.mark if child is not None else node.mark

    def _edit_nodes(self) -> list[Node]:
        edits = self.doc.get("edits")
        return list(edits.value) if edits is not None else []

    # ------------------------------------------------------------ build

    def build(self) -> Shot | None:
        errors_before = self.report.made
        model = self._model()
        window = self.setting("window")
        sampling = self._sampling(model)
        video = read_input_video(self.doc, self.report, sampling)
        image = self._image_ref(self.doc.get("image"))
        if video is not None:
            image = start_image(video, image, self.doc, self.report, sampling)
        end_image = self._image_ref(self.doc.get("end_image"))
        edits = self._edits(window)
        self._check_edit_graph()
        size = self._size(image, edits, video)
        fps = float(self.setting("fps")) if video is None else \
            video_fps(video, self.doc.get("fps"), self.report)
        sections = self._sections(fps)
        outputs = self._outputs()
        edits = self._used_edits(edits, image, end_image, sections)
        self._cross_checks(model, sampling, end_image, sections, edits)
        if video is not None:
            check_extension(video, self.doc, self.report, end_image)
        if self.report.made > errors_before or image is None or size is None:
            return None
        return Shot(
            source=self.exp.source,
            label=self.exp.label,
            vars=dict(self.exp.vars),
            model=model,
            outputs=tuple(outputs),
            size=size,
            fps=fps,
            window=window,
            sampling=sampling,
            sampler=self.setting("sampler"),
            noise=self.setting("noise"),
            seed=int(self.setting("seed")),
            image=image,
            end_image=end_image,
            end_image_strength=scheduled_number(self.setting("end_image_strength")),
            sections=tuple(sections),
            edits=tuple(edits),
            post=self._post(),
            experimental=self._experimental(),
            row=self.exp.row,
            files=tuple(dict.fromkeys([resolve(self.exp.source), *self.exp.files])),
            input_video=video,
            schedules=shot_schedules(self.doc, fps, self.report),
        )

    def _model(self) -> ModelSpec:
        node = self.doc.get("model")
        if node is None:
            return ModelSpec(DEFAULTS["model"], self.doc.mark)
        if isinstance(node.value, str):
            return ModelSpec(node.value, node.mark)
        paths = {}
        for key in MODEL_COMPONENTS:
            child = node.get(key)
            if child is not None:
                paths[key] = str(resolve((Path(child.base) / child.value).expanduser()))
        return ModelSpec(node.value["profile"].value, node.mark, paths, self._model_settings(node))

    def _model_settings(self, node: Node) -> ModelSettings:
        raw = {key: child.plain() for key, child in node.items()}
        rope = raw.get("rope_scaling")
        if raw.get("vram_gb") is not None and raw.get("offload") != "blocks":
            self.report.warn(node.get("vram_gb").mark, "vram_gb has no effect unless "
                                                       "offload: blocks")
        return ModelSettings(
            dtype=raw.get("dtype"),
            attention=raw.get("attention", "sdpa"),
            offload=raw.get("offload", "none"),
            vram_gb=None if raw.get("vram_gb") is None else float(raw["vram_gb"]),
            rope_scaling=None if rope is None else RopeScalingSpec(
                float(rope["factor"]), float(rope.get("timestep_threshold", 0))),
            vae_tiling=bool(raw.get("vae_tiling", False)),
            loras=tuple(lora for item in (node.get("lora").value if node.get("lora") else [])
                        if (lora := self._lora(item)) is not None),
        )

    def _lora(self, node: Node) -> Lora | None:
        path_node = node.get("path")
        written = (Path(path_node.base) / path_node.value).expanduser()
        path = resolve(written)
        problem = lora_problem(written)  # the path as written: a broken link is named as one
        if problem is None:
            try:
                digest = _sha256(path)
            except (FileProblem, OSError) as exc:  # changed since it was checked
                problem = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
            else:
                scale = node.get("scale")
                return Lora(path, digest, 1.0 if scale is None else float(scale.value),
                            path_node.mark)
        hint = suggest_file(written) if problem == "does not exist" else ""
        self.report.error(path_node.mark, f"LoRA '{path_node.value}' {problem}{hint}")
        return None

    def _sampling(self, model: ModelSpec) -> str:
        return self.value("sampling") or PROFILES[model.profile].sampling

    # ------------------------------------------------------------ images

    def _image_ref(self, node: Node | None) -> ImageRef | None:
        if node is None:
            return None
        if node.is_map:
            name_node = node.value["edit"]
            name = name_node.value
            if name not in self.edit_names:
                known = f"{suggest(name, self.edit_names)}" if self.edit_names else \
                    "; this shot has no edits"
                self.report.error(name_node.mark, f"no edit named '{name}'{known}")
            return ImageRef(node.mark, edit=name)
        text = node.value
        path = (Path(node.base) / text).expanduser()
        try:
            info: ImageInfo | None = probe_image(path)
        except ImageProblem as problem:
            hint = suggest_file(path) if "not found" in str(problem) else ""
            self.report.error(node.mark, f"image '{text}' {problem}{hint}")
            info = None
        return ImageRef(node.mark, info=info, text=text)

    def _source_info(self, ref: ImageRef | None, edits: dict[str, Edit]) -> ImageInfo | None:
        """The file an image field ultimately comes from (an edit starts from its image)."""
        for _ in range(len(edits) + 1):  # a longer chain is a cycle, reported elsewhere
            if ref is None or ref.edit is None:
                return ref.info if ref is not None else None
            edit = edits.get(ref.edit)
            ref = edit.image if edit is not None else None
        return None

    # ------------------------------------------------------------ size

    def _size(self, image: ImageRef | None, edits: list[Edit],
              video: InputVideo | None = None) -> tuple[int, int] | None:
        node = self.doc.get("size")
        raw = node.plain() if node is not None else "auto"
        mark = node.mark if node is not None else self.doc.mark
        if raw == "auto" and video is not None:
            return video_size(video, None, self.report)
        if raw == "auto":
            info = self._source_info(image, {e.name: e for e in edits})
            if info is None:
                return None  # the image's own error says why
            return _nearest_bucket(info.width, info.height)
        if isinstance(raw, str):
            width, height = (int(v) for v in raw.split("x"))
        else:
            width, height = raw
        for side in (width, height):
            if not 64 <= side <= 2048:
                self.report.error(mark, f"size {width}x{height}: each side must be 64 to 2048")
                return None
        rounded = (_round16(width), _round16(height))
        if rounded != (width, height):
            self.report.warn(mark, f"size {width}x{height} rounded to {rounded[0]}x{rounded[1]} "
                                   "(sides are multiples of 16)")
        return rounded if video is None else video_size(video, rounded, self.report)

    # ------------------------------------------------------------ sections

    def _sections(self, fps: float) -> list[Section]:
        doc = self.doc
        nodes = list(doc.get("sections").value) if doc.get("sections") is not None else None
        if nodes is None:
            if doc.get("prompt") is None:
                self.report.error(doc.mark, "the shot needs 'sections' or a top-level 'prompt' "
                                            "and 'duration'")
                return []
            nodes = [doc]  # the one-section shorthand: the shot is its own section
        sections: list[Section] = []
        previous_prompt: str | None = self.value("prompt")
        total = 0.0
        for index, node in enumerate(nodes):
            prompt = self.value("prompt", node)
            if prompt is None:
                prompt = previous_prompt if index else self.value("prompt")
            if prompt is None:
                self.report.error(node.mark, "the first section needs a prompt (or set a "
                                             "top-level prompt)")
                prompt = ""
            frames, text, dmark, exact = self._duration(node, fps, index)
            total += frames / fps
            image = self._image_ref(node.get("image")) if node is not doc else None
            if index == 0 and image is not None:
                self.report.error(image.mark, "the first section starts on the shot's start "
                                              "image; set the top-level 'image' instead")
            blend_frames, blend_mark = 0.0, None
            if node.get("blend") is not None:
                blend_mark = node.get("blend").mark
                blend_frames = _frames_of(node.get("blend").plain(), fps)
                if blend_frames <= 0:
                    self.report.error(blend_mark, "blend must be longer than 0 (leave it out for "
                                                  "no blend)")
                elif index == 0:
                    self.report.error(blend_mark, "the first section has no previous prompt to "
                                                  "blend from")
                elif prompt == previous_prompt:
                    self.report.warn(blend_mark, "blend has no effect: the prompt does not change")
            sections.append(Section(
                index=index, mark=node.mark, name=self.value("name", node), prompt=prompt,
                frames=frames, exact=exact, duration_text=text, duration_mark=dmark, image=image,
                blend_frames=blend_frames, blend_mark=blend_mark,
                sampling=self._sampling_settings(node),
            ))
            previous_prompt = prompt
        if total > MAX_SHOT_SECONDS:
            self.report.error(doc.mark, f"the shot lasts {total:.0f} s; the limit is "
                                        f"{MAX_SHOT_SECONDS:.0f} s")
        return sections

    def _duration(self, node: Node, fps: float, index: int) -> tuple[float, str, Mark, bool]:
        """A section's length in video frames, how it was written, where, and whether it is
        exact (given in frames, or the shot says exact: true)."""
        own = [k for k in ("duration", "frames") if node.get(k) is not None]
        if len(own) == 2:
            self.report.error(node.key_mark("frames"), "give either duration or frames, not both")
        source = node if own else self.doc
        top = [k for k in ("duration", "frames") if self.doc.get(k) is not None]
        if not own and len(top) == 2:
            self.report.error(self.doc.key_mark("frames"),
                              "give either duration or frames, not both")
        key = (own or top or [None])[0]
        if key is None:
            where = "the shot" if node is self.doc else f"section {index + 1}"
            self.report.error(node.mark, f"{where} needs a duration (\"2.4s\", 2.4 or "
                                         "{frames: 72})")
            return 1.0, "?", node.mark, False
        child = source.get(key)
        raw = child.plain()
        frames = float(raw) if key == "frames" else _frames_of(raw, fps)
        text = f"{raw} frames" if key == "frames" else _duration_text(raw)
        if frames <= 0:
            self.report.error(child.mark, f"{key} must be longer than 0")
            frames = 1.0
        exact = key == "frames" or isinstance(raw, dict) or self.value("exact") is True
        return frames, text, child.mark, exact

    def _sampling_settings(self, *nodes: Node | None) -> Sampling:
        teacache = self.setting("teacache", *nodes)
        if teacache is True:
            threshold: float | None = TEACACHE_DEFAULT_THRESHOLD
        elif teacache is False:
            threshold = None
        else:
            threshold = scheduled_number(teacache)
        return Sampling(
            seed=int(self.setting("seed", *nodes)),
            steps=int(self.setting("steps", *nodes)),
            guidance=scheduled_number(self.setting("guidance", *nodes)),
            cfg=scheduled_number(self.setting("cfg", *nodes)),
            negative_prompt=self.setting("negative_prompt", *nodes),
            flow_shift=self._flow_shift(*nodes),
            teacache=threshold,
            schedules=sampling_schedules(
                self.doc, nodes, float(self.setting("fps")), self.report,
                one_frame=any(n is e for n in nodes for e in self._edit_nodes())),
        )

    def _flow_shift(self, *nodes: Node | None) -> FlowShift:
        """The shot's flow_shift with a section's or edit's merged over it."""
        fields: dict[str, Any] = {}
        for node in (self.doc, *reversed(nodes)):
            raw = node.get("flow_shift").plain() if node is not None and \
                node.get("flow_shift") is not None else None
            if raw is None:
                continue
            if isinstance(raw, str):
                fields = {"preset": raw}
            elif isinstance(raw, (int, float)):
                fields = {"shift": float(raw)}
            else:
                fields = {k: v for k, v in fields.items() if k != "shift"} | raw
        mu = fields.get("mu")
        return FlowShift(
            preset=fields.get("preset", "balanced"),
            detail=fields.get("detail", "standard"),
            mu=None if mu in (None, "auto") else scheduled_number(mu),
            sigma=None if fields.get("sigma") is None else scheduled_number(fields["sigma"]),
            shift=fields.get("shift"),
        )

    # ------------------------------------------------------------ edits

    def _edits(self, window: int) -> list[Edit]:
        edits: list[Edit] = []
        seen: dict[str, Mark] = {}
        for node in self._edit_nodes():
            name_node = node.value["name"]
            name = name_node.value
            if name in seen:
                self.report.error(name_node.mark, f"duplicate edit name '{name}' (first at line "
                                                  f"{seen[name].line})")
            seen.setdefault(name, name_node.mark)
            image = self._image_ref(node.get("image"))
            controls = []
            controls_node = node.get("controls")
            control_nodes = controls_node.value if controls_node is not None else []
            for control in control_nodes:
                mask = self._image_ref(control.get("mask"))
                controls.append(Control(self._image_ref(control.get("image")), mask,
                                        self.value("index", control) or 0))
            if not control_nodes and image is not None:
                controls.append(Control(image, None, 0))
            target = self.value("target_index", node)
            target = window if target is None else target
            for control, cnode in zip(controls, control_nodes):
                if control.index == target:
                    self.report.warn(cnode.mark, f"control index {control.index} equals the "
                                                 "target_index; they share one latent position")
            edits.append(Edit(
                name=name, mark=node.mark, image=image, prompt=self.value("prompt", node),
                controls=tuple(controls), target_index=target,
                no_2x=bool(self.value("no_2x", node)), no_4x=bool(self.value("no_4x", node)),
                no_post=bool(self.value("no_post", node)),
                output=self._edit_output(node.get("output")),
                # One-frame inference has no TeaCache: a single window of steps.
                sampling=replace(self._sampling_settings(node), teacache=None),
            ))
        return edits

    def _check_edit_graph(self) -> None:
        """Edits may feed each other through {edit: NAME}; a cycle is an error."""
        graph: dict[str, list[tuple[str, Mark]]] = {}
        for node in self._edit_nodes():
            refs = []
            for ref in _edit_refs(node):
                refs.append((ref.value["edit"].value, ref.mark))
            graph.setdefault(node.value["name"].value, refs)
        state: dict[str, int] = {}  # 1 on the current path, 2 done
        for start in graph:
            if state.get(start) is None:
                self._walk_edits(graph, state, start)

    def _walk_edits(self, graph: dict[str, list[tuple[str, Mark]]], state: dict[str, int],
                    start: str) -> None:
        """Depth-first from ``start`` with an explicit stack (a chain of edits may be long),
        reporting each edge that closes a cycle."""
        path = [start]
        pending = [iter(graph[start])]
        state[start] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                state[path.pop()] = 2
                pending.pop()
                continue
            target, mark = step
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                self.report.error(mark, f"edits form a cycle: {' -> '.join(cycle)}")
            elif target in graph and state.get(target) is None:
                state[target] = 1
                path.append(target)
                pending.append(iter(graph[target]))

    def _used_edits(self, edits: list[Edit], image: ImageRef | None,
                    end_image: ImageRef | None, sections: list[Section]) -> list[Edit]:
        """The edits something needs (an image field uses them or they write an output)."""
        by_name = {e.name: e for e in edits}
        needed: set[str] = set()
        stack = [r.edit for r in (image, end_image, *(s.image for s in sections))
                 if r is not None and r.edit]
        stack += [e.name for e in edits if e.output is not None]
        while stack:
            name = stack.pop()
            if name in needed or name not in by_name:
                continue
            needed.add(name)
            edit = by_name[name]
            stack += [r.edit for r in edit.images() if r.edit]
        for edit in edits:
            if edit.name not in needed:
                self.report.warn(edit.mark, f"edit '{edit.name}' is not used by any image field "
                                            "and has no output; it will not be rendered")
        return [e for e in edits if e.name in needed]

    # ------------------------------------------------------------ outputs

    def _outputs(self) -> list[Output]:
        node = self.doc.get("output")
        if node is None:
            return []
        items = node.value if node.is_list else [node]
        outputs: list[Output] = []
        for item in items:
            output = self._output(item)
            if output is None:
                continue
            twin = next((o for o in outputs if o.path == output.path), None)
            if twin is not None:
                self.report.error(item.mark, f"output '{item.value}' is listed twice")
                continue
            outputs.append(output)
        return outputs

    def _output(self, node: Node) -> Output | None:
        text = node.value
        path = self._inside_root(node)
        if path is None:
            return None
        suffix = Path(text).suffix.lower()
        is_folder = text.endswith(("/", "\\")) or not suffix
        if is_folder:
            if path.exists() and not path.is_dir():
                self.report.error(node.mark, f"output '{text}' is a folder of PNG frames, but a "
                                             "file of that name exists")
                return None
            return Output(path, "frames", node.mark)
        if suffix not in VIDEO_FORMATS:
            if suffix == ".png":
                hint = f"; for PNG frames give a folder such as '{text[: -len(suffix)]}/'"
            else:
                hint = suggest(suffix, VIDEO_FORMATS)
            self.report.error(node.mark, f"unsupported output format '{suffix}'{hint} (use .mp4, "
                                         ".webm, .gif, .mov, .safetensors or a folder for PNG "
                                         "frames)")
            return None
        if path.is_dir():
            self.report.error(node.mark, f"output '{text}' is an existing folder")
            return None
        return Output(path, VIDEO_FORMATS[suffix], node.mark)

    def _edit_output(self, node: Node | None) -> Path | None:
        if node is None:
            return None
        path = self._inside_root(node)
        if path is None:
            return None
        if path.suffix.lower() not in IMAGE_FORMATS:
            self.report.error(node.mark, f"an edit writes an image: '{node.value}' needs .png, "
                                         ".jpg, .jpeg or .webp"
                                         f"{suggest(path.suffix.lower(), IMAGE_FORMATS)}")
            return None
        return path

    def _inside_root(self, node: Node) -> Path | None:
        """Outputs resolve against the shot's folder (or --output-root) and must stay inside."""
        raw = Path(node.value).expanduser()
        path = resolve(raw if raw.is_absolute() else self.root / raw)
        if not path.is_relative_to(self.root) or path == self.root:
            where = "--output-root" if self.root_given else "the shot's folder"
            tip = "" if self.root_given else "; pass --output-root DIR to write elsewhere"
            self.report.error(node.mark, f"output '{node.value}' is outside {where} "
                                         f"({self.root_shown}){tip}")
            return None
        return path

    # ------------------------------------------------------------ the rest

    def _post(self) -> Post:
        node = self.doc.get("post")
        if node is None:
            return Post()
        return Post(**{k: v.value for k, v in node.items()})

    def _experimental(self) -> Experimental:
        node = self.doc.get("experimental")
        if node is None:
            return Experimental()
        raw = node.plain()
        blur = raw.get("context_blur")
        return Experimental(
            context_blur=(scheduled_number(blur["sigma"]),
                          scheduled_number(blur.get("alpha", 0.0))) if blur else None,
            context_decay=scheduled_number(raw.get("context_decay", 0.0)),
            cfg_schedule_beta=scheduled_number(raw["cfg_schedule"]["beta"])
            if "cfg_schedule" in raw
            else None,
            transition_mu_boost=scheduled_number(raw.get("transition_mu_boost", 0.0)),
        )

    def _cross_checks(self, model: ModelSpec, sampling: str, end_image: ImageRef | None,
                      sections: list[Section], edits: list[Edit]) -> None:
        if end_image is not None and sampling == "forward":
            why = "framepack-f1 samples forward" if self.value("sampling") is None else \
                "sampling is forward"
            self.report.error(end_image.mark, f"end_image cannot be used when {why}; set "
                                              "sampling: inverted or endpoints-first, or remove "
                                              "end_image")
        if end_image is None and self.doc.get("end_image_strength") is not None:
            self.report.warn(self.mark("end_image_strength"),
                             "end_image_strength has no effect without end_image")
        if self.value("noise") == "sequential":
            for index, section in enumerate(self.doc.get("sections").value
                                            if self.doc.get("sections") is not None else []):
                if section.get("seed") is not None:
                    self.report.warn(section.get("seed").mark, "sequential noise draws every "
                                     "window from the shot's seed; this section seed is ignored")
        trained = PROFILES[model.profile].sampling
        if model.profile != "tiny" and self.value("sampling") is not None and (
                (trained == "forward") != (sampling == "forward")):
            self.report.warn(self.mark("sampling"), f"{model.profile} was trained for {trained} "
                                                    f"sampling; {sampling} may look wrong")
        if edits and model.profile == "framepack-f1":
            self.report.warn(edits[0].mark, "one-frame edits are documented for the framepack "
                                            "model only, not framepack-f1")
        users = [(s.sampling, self._section_node(s.index)) for s in sections]
        users += [(e.sampling, n) for e, n in zip(edits, self._edit_nodes_of(edits))]
        for settings, node in users:
            # Warn once, where the setting is written (a section, an edit or the shot).
            if settings.negative_prompt and settings.cfg <= 1.0:
                self.report.warn(self._origin("negative_prompt", node),
                                 "negative_prompt has no effect unless cfg > 1")
            if settings.teacache is not None and settings.cfg > 1.0:
                self.report.warn(self._origin("teacache", node),
                                 "teacache with cfg > 1 is unreliable (its counter counts "
                                 "transformer calls, not steps)")

    def _origin(self, key: str, node: Node | None) -> Mark:
        if node is not None and node.get(key) is not None:
            return node.get(key).mark
        return self.mark(key)

    def _section_node(self, index: int) -> Node | None:
        sections = self.doc.get("sections")
        return sections.value[index] if sections is not None else None

    def _edit_nodes_of(self, edits: list[Edit]) -> list[Node]:
        by_name = {n.value["name"].value: n for n in self._edit_nodes()}
        return [by_name[e.name] for e in edits]


# ---------------------------------------------------------------- pure helpers

_HASHES: dict[tuple[str, int, int], str] = {}


def _sha256(path: Path) -> str:
    """A file's hash, memoised on (path, size, mtime): LoRA files are large, re-validation
    (watch, matrices) should not read them again."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(path)
    return _HASHES[key]



def _edit_refs(node: Node) -> list[Node]:
    """Every {edit: NAME} image field inside an edit's mapping."""
    controls = node.get("controls")
    fields = [node.get("image")] + [control.get(key) for control in
                                    (controls.value if controls is not None else [])
                                    for key in ("image", "mask")]
    return [f for f in fields if f is not None and f.is_map]


def _frames_of(raw: Any, fps: float) -> float:
    """Video frames of a duration value: "2.4s", 2.4 (seconds) or {frames: N}."""
    if isinstance(raw, dict):
        return float(raw["frames"])
    if isinstance(raw, str):
        return float(re.sub(r"\s|s$", "", raw.strip())) * fps
    return float(raw) * fps


def _duration_text(raw: Any) -> str:
    if isinstance(raw, dict):
        return f"{raw['frames']} frames"
    if isinstance(raw, str):
        return raw.strip().replace(" ", "")
    return f"{raw:g}s"


def _round16(side: int) -> int:
    return max(64, int(math.floor(side / 16 + 0.5)) * 16)


def _nearest_bucket(width: int, height: int) -> tuple[int, int]:
    """FramePack's bucket rule: minimise |h * bw - w * bh|, the last of equals winning (so a
    square image gets 608 wide x 640 high, as in FramePack); returns (width, height)."""
    best, best_metric = BUCKETS_640[0], float("inf")
    for bh, bw in BUCKETS_640:
        metric = abs(height * bw - width * bh)
        if metric <= best_metric:
            best, best_metric = (bh, bw), metric
    return best[1], best[0]
