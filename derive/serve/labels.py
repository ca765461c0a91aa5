"""The page's words in English and Chinese (`?lang=zh`)."""

from __future__ import annotations

LABELS = {
    "en": {
        "title": "derive: check a backpropagation formula",
        "intro": "Pick a network or a question, type your formula, and derive proves it or refutes it with a "
                 "counterexample and the name of the mistake.",
        "network": "Network", "question": "Question", "wrt": "derivative with respect to", "kind": "kind",
        "formula": "Your formula", "syntax": "syntax", "student": "Your name or student id",
        "preview": "How derive reads it", "check": "Check", "verdict": "Verdict", "proven": "proven",
        "refuted": "refuted", "undecided": "undecided", "unparsed": "not read", "counterexample": "Counterexample",
        "value": "value", "yours": "your formula", "derivative": "the derivative", "mistake": "The mistake",
        "correct": "The correct formula", "seconds": "seconds", "points": "points", "teacher": "Teacher",
        "submissions": "Submissions", "gradebook": "Gradebook", "summary": "Class summary", "download": "Download CSV",
        "share_right": "share right", "mean": "mean", "time": "time", "answer": "answer", "total": "total",
        "proven_text": "Proven: your formula equals the derivative for every value of the network's quantities.",
        "refuted_text": "Refuted: at the values below your formula and the derivative differ.",
        "undecided_text": "Undecided: neither proven nor refuted within the time allowed.",
        "no_js": "The preview updates as you type when JavaScript is on; without it, Check shows it too.",
        "students": "students", "answers": "answers", "student_column": "Student", "formula_column": "Formula",
        "lang": "中文", "lang_code": "zh",
    },
    "zh": {
        "title": "derive：检验反向传播公式",
        "intro": "选择网络或题目，输入你的公式；derive 会证明它，或给出反例并指出错误的名称。",
        "network": "网络", "question": "题目", "wrt": "求导变量", "kind": "类型",
        "formula": "你的公式", "syntax": "语法", "student": "姓名或学号",
        "preview": "derive 的读法", "check": "检验", "verdict": "结论", "proven": "已证明",
        "refuted": "已反驳", "undecided": "未定", "unparsed": "无法读取", "counterexample": "反例",
        "value": "值", "yours": "你的公式", "derivative": "导数", "mistake": "错误",
        "correct": "正确公式", "seconds": "秒", "points": "分", "teacher": "教师",
        "submissions": "提交记录", "gradebook": "成绩册", "summary": "班级概况", "download": "下载 CSV",
        "share_right": "正确率", "mean": "平均", "time": "时间", "answer": "答案", "total": "总分",
        "proven_text": "已证明：对网络中各量的任意取值，你的公式都等于导数。",
        "refuted_text": "已反驳：在下列取值处，你的公式与导数不相等。",
        "undecided_text": "未定：在限定时间内既未证明也未反驳。",
        "no_js": "开启 JavaScript 时，预览随输入更新；否则点击“检验”也会显示。",
        "students": "学生", "answers": "答案", "student_column": "学生", "formula_column": "公式",
        "lang": "English", "lang_code": "en",
    },
}


def labels(lang: str | None) -> dict[str, str]:
    return LABELS.get(lang or "en", LABELS["en"])
