"""Where the word-vector test sets are: the files the gensim wheel ships under gensim/test/test_data/.

gensim is found with importlib's spec (its folder), never imported: importing
it costs a second and pulls scipy. The sets:
    questions-words.txt   Mikolov et al. (2013) analogies, 19,544 in 14 sections.
    wordsim353.tsv        WordSim-353 (Finkelstein et al., 2002): relatedness.
    simlex999.txt         SimLex-999 (Hill et al., 2015): similarity, not relatedness.
"""

from __future__ import annotations

from pathlib import Path

from workbench_engines.errors import EngineError
from workbench_engines.packagedata import package_folder

INSTALL = "pip install gensim==4.4.0 (or pip install 'workbench[test]')"
ANALOGIES = "questions-words.txt"
WORDSIM353 = "wordsim353.tsv"
SIMLEX999 = "simlex999.txt"


def test_data_dir() -> Path:
    """gensim's test_data folder, found without importing gensim."""
    folder = package_folder("gensim", "test", "test_data")
    if folder is not None:
        return folder
    raise EngineError(f"the word-vector test sets ship inside the gensim wheel: {INSTALL}")


def _file(name: str) -> Path:
    path = test_data_dir() / name
    if not path.is_file():
        raise EngineError(f"{path} is missing from the gensim install; reinstall it: {INSTALL}")
    return path


def analogies_path() -> Path:
    """questions-words.txt: ': section' lines, then 'a b c d' lines meaning a:b :: c:d."""
    return _file(ANALOGIES)


def wordsim353_path() -> Path:
    """wordsim353.tsv: 'word1<TAB>word2<TAB>score' lines, '#' comments."""
    return _file(WORDSIM353)


def simlex999_path() -> Path:
    """simlex999.txt: 'word1<TAB>word2<TAB>score' lines, '#' comments."""
    return _file(SIMLEX999)
