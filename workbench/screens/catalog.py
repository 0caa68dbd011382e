"""The catalog: tracks and their lessons with progress; resume where you left off."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from workbench.curriculum import Curriculum, Lesson
from workbench.curriculum.check import lesson_needs
from workbench.extras import missing
from workbench.messages import LessonChosen
from workbench.progress import LessonProgress, ProgressStore


def progress_parts(lesson: Lesson, p: LessonProgress) -> list[str]:
    """['steps 2/5', 'quiz 3/4'] for a lesson (quiz counts right answers of those asked)."""
    total = len(lesson.steps)
    parts = [f"steps {min(p.steps_seen, total)}/{total}"]
    if lesson.questions:
        parts.append(f"quiz {p.correct}/{len(lesson.questions)}")
    return parts


def progress_line(store: ProgressStore, lesson: Lesson) -> str:
    """'steps 2/5 · quiz 3/4' for a lesson."""
    return " · ".join(progress_parts(lesson, store.lesson_progress(lesson.id, [q.id for q in lesson.questions])))


def fitted(mark: str, title: str, parts: list[str], room: int) -> str:
    """A lesson's tree line in room cells: the fullest form that fits, shortening the title (with an ellipsis)
    before dropping a count, and the quiz count before the steps count.

    At 60 columns "Byte-level BPE and pre-tokenisation · steps 0/2" lost its quiz count while shorter titles kept
    theirs; a learner needs the counts more than a title's last words, which the details pane shows in full.
    """
    head = f"{mark} {title}"
    if not parts:
        return f"{mark} {shortened(title, max(room - len(mark) - 1, 1))}"
    for text in (f"{head}  ·  {' · '.join(parts)}", f"{head} · {' · '.join(parts)}"):
        if cell_len(text) <= room:
            return text
    for count in range(len(parts), 0, -1):
        tail = f" · {' · '.join(parts[:count])}"
        space = room - cell_len(tail) - len(mark) - 1
        if space >= MIN_TITLE:
            return f"{mark} {shortened(title, space)}{tail}"
    return f"{mark} {shortened(title, max(room - len(mark) - 1, 1))}"


MIN_TITLE = 12
"""The fewest cells a shortened title keeps, its ellipsis included, before a count is dropped instead."""


def shortened(title: str, width: int) -> str:
    """title cut to width cells, ending in an ellipsis when cut."""
    if cell_len(title) <= width:
        return title
    return set_cell_size(title, width - 1).rstrip() + "…"


class LessonTree(Tree[Lesson | None]):
    """The catalog's tree: a lesson's line is fitted to the tree's width by :func:`fitted`.

    A Tree line is cut at the edge, and at 60 columns "· steps 0/2 · quiz 0/4" lost its last words; so a
    lesson's line is built for the width it has (the details pane below always has the whole progress line).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fits: dict[int, tuple[str, str, list[str]]] = {}
        """A lesson node's (mark, title, progress parts) by node id; a node without them shows its own label."""

    def clear(self) -> LessonTree:
        self.fits.clear()
        return super().clear()

    def on_resize(self) -> None:
        """Keep the cursor's line in view: the details pane below grows with the highlighted lesson's objectives,
        after the tree scrolled to it, and End's lesson sat under the pane."""
        if self.cursor_node is not None:
            self.scroll_to_node(self.cursor_node, animate=False)

    def render_label(self, node: TreeNode, base_style: Style, style: Style) -> Text:
        parts = self.fits.get(node.id)
        if parts is None:
            return super().render_label(node, base_style, style)
        depth, parent = 0, node.parent
        while parent is not None and parent is not self.root:
            depth, parent = depth + 1, parent.parent
        room = self.scrollable_content_region.width - self.guide_depth * depth  # the guides: "├── " per level
        label = Text(fitted(*parts, room))
        label.stylize(style)
        return label


class CatalogScreen(Screen):
    """Tracks as branches, lessons as leaves; details of the highlighted lesson below."""

    BINDINGS = [
        Binding("enter", "open", "Open", priority=True),
        Binding("r", "resume", "Resume"),
        Binding("e", "exercises", "Exercises", tooltip="Open the exercises: code to write, checked on every save"),
    ]
    DEFAULT_CSS = """
    CatalogScreen Tree { height: 1fr; }
    CatalogScreen #details { height: auto; max-height: 9; border-top: solid $primary; padding: 0 1; width: 1fr; }
    """

    def __init__(self, curriculum: Curriculum, store: ProgressStore) -> None:
        super().__init__()
        self.curriculum = curriculum
        self.store = store

    def compose(self) -> ComposeResult:
        yield Header()
        tree = LessonTree("Lessons", id="lessons")
        tree.show_root = False
        yield tree
        yield Static("", id="details")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "catalog"
        self.rebuild()
        self.query_one(Tree).focus()

    def on_screen_resume(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """Redraw the tree with current progress, keeping the cursor on the same lesson."""
        tree = self.query_one(LessonTree)
        current = tree.cursor_node.data if tree.cursor_node else None
        tree.clear()
        target = None
        for track in self.curriculum.tracks:
            branch = tree.root.add(Text(track.title, style="bold"), data=None, expand=True)
            for lesson in track.lessons:
                mark, title, parts = self._parts(lesson)
                node = branch.add_leaf(Text(fitted(mark, title, parts, 1000)), data=lesson)
                tree.fits[node.id] = (mark, title, parts)
                if current is not None and lesson.id == current.id:
                    target = node
        if self.curriculum.issues:
            branch = tree.root.add(Text("Problems", style="bold"), expand=True)
            for issue in self.curriculum.issues:
                branch.add_leaf(Text(f"✗ {issue}"))
        first = next((n for n in tree.root.children[0].children), None) if tree.root.children else None
        # The tree takes a cursor only once it is laid out.
        self.call_after_refresh(self._select, target or first)

    def _select(self, node: TreeNode | None) -> None:
        """Put the cursor on node and show its details, which are stale when the cursor line didn't move."""
        self.query_one(Tree).move_cursor(node)
        if node is not None:
            self._show_details(node)

    def _parts(self, lesson: Lesson) -> tuple[str, str, list[str]]:
        """A lesson's mark, title and progress parts for its tree line (a broken lesson has no parts).

        ✓ means done: every step seen and every quiz question answered; • means started.
        """
        if lesson.broken:
            return "✗", f"{lesson.title} (broken)", []
        p = self.store.lesson_progress(lesson.id, [q.id for q in lesson.questions])
        done = p.steps_seen >= len(lesson.steps) > 0 and p.answered >= len(lesson.questions)
        mark = "✓" if done else ("•" if p.steps_seen or p.answered else " ")
        return mark, lesson.title, progress_parts(lesson, p)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        self._show_details(event.node)

    def _show_details(self, node: TreeNode) -> None:
        lesson = node.data
        details = self.query_one("#details", Static)
        if not isinstance(lesson, Lesson):
            details.update("")
            return
        text = Text()
        text.append(f"{lesson.title}", style="bold")
        text.append(f"  ({lesson.id}, {lesson.minutes} min)\n" if lesson.minutes else f"  ({lesson.id})\n")
        if lesson.broken:
            text.append("This lesson can't open:\n")
            for issue in lesson.issues:
                text.append(f"  {issue}\n")
        else:
            width = max((details.content_region.width or self.size.width - 2) - 4, 10)
            for objective in lesson.objectives:
                # A wrapped objective hangs under its first word, not under the bullet or at the margin.
                for n, line in enumerate(Text(objective).wrap(self.app.console, width)):
                    text.append("  • " if n == 0 else "    ")
                    text.append_text(line)
                    text.append("\n")
            text.append(progress_line(self.store, lesson))
            for reason in filter(None, map(missing, lesson_needs(lesson))):
                text.append(f"\nThis lesson {reason}")
            if lesson.issues:
                text.append(f"\n{len(lesson.issues)} problem(s): {lesson.issues[0]}")
        details.update(text)

    def on_resize(self) -> None:
        node = self.query_one(LessonTree).cursor_node
        if node is not None:
            self._show_details(node)  # the objectives wrap to the pane's new width

    def action_open(self) -> None:
        node = self.query_one(Tree).cursor_node
        if node is not None and isinstance(node.data, Lesson):
            self._open(node.data)
        elif node is not None:
            node.toggle()

    def _open(self, lesson: Lesson) -> None:
        if lesson.broken:
            self.notify(f"{lesson.issues[0]}", title="This lesson is broken", severity="error", markup=False)
            return
        self.post_message(LessonChosen(lesson.id))

    def action_exercises(self) -> None:
        self.app.open_exercises()

    def action_resume(self) -> None:
        lesson_id = self.store.last_lesson()
        lesson = self.curriculum.lesson(lesson_id) if lesson_id else None
        if lesson is None:
            first = next((l for l in self.curriculum.lessons if not l.broken), None)
            if first is None:
                self.notify("There is no lesson to open.", severity="warning")
                return
            lesson = first
        self._open(lesson)
