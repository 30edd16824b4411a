"""Catalogue rows of the demo bundle.

Every province lists the same eighteen reference items (`XD0000` …), whose classes, shares and caps
the tests and the worked examples rely on. At national scale a province also lists about 50,000
generated items. Like the real national codes, one code means one product everywhere, so the
items come from one national list. Each province leaves out a few of them and sets its own 乙
shares, as provincial catalogues do.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

CATALOGUE_HEADER = [
    "prov_admdvs",
    "list_type",
    "med_list_codg",
    "name",
    "chrgitm_lv",
    "selfpay_prop",
    "pric_uplmt_amt",
    "min_level",
    "med_types",
    "begndate",
    "enddate",
]
_IN_FORCE_FROM = "2024-01-01"


def _words(text: str) -> tuple[str, ...]:
    """The space-separated names of a long list, which reads better as one block of text."""
    return tuple(text.split())


@dataclass(frozen=True)
class Item:
    list_type: str
    code: str
    name: str
    level: str  # 01 甲, 02 乙, 03 丙
    share: str  # the 乙 first self-pay share
    cap: str = ""  # price cap per unit, yuan
    min_level: str = ""
    med_types: str = ""

    def row(self, prov: str) -> list[str]:
        return [
            prov,
            self.list_type,
            self.code,
            self.name,
            self.level,
            self.share,
            self.cap,
            self.min_level,
            self.med_types,
            _IN_FORCE_FROM,
            "",
        ]


REFERENCE_ITEMS: tuple[Item, ...] = (
    Item("101", "XD0000", "阿卡波糖片", "01", "0"),
    Item("101", "XD0001", "瑞格列奈片", "02", "0.10"),
    Item("101", "XD0002", "二甲双胍缓释片", "01", "0"),
    Item("101", "XD0003", "硝苯地平控释片", "02", "0.05"),
    Item("101", "XD0004", "阿托伐他汀钙片", "02", "0.10"),
    Item("101", "XD0005", "头孢呋辛酯片", "02", "0.10"),
    Item("101", "XD0006", "人血白蛋白", "02", "0.20"),
    Item("101", "XD0007", "复方甘草片", "01", "0"),
    Item("101", "XD0008", "进口抗肿瘤靶向药", "03", "0"),
    Item("101", "XD0009", "胰岛素注射液", "01", "0"),
    Item("201", "XS0000", "三人间床位费", "01", "0", "60.00"),
    Item("201", "XS0001", "CT平扫", "02", "0.10", "260.00"),
    Item("201", "XS0002", "核磁共振成像", "02", "0.20", "600.00", min_level="3"),
    Item("201", "XS0003", "血常规", "01", "0", "20.00"),
    Item("201", "XS0004", "血液透析", "02", "0.10", "420.00", med_types="21;14"),
    Item("201", "XS0005", "特需病房", "03", "0"),
    Item("301", "XC0000", "一次性输液器", "02", "0.10", "8.00"),
    Item("301", "XC0001", "心脏支架", "02", "0.30", "798.00"),
)

_DRUG_STEMS = _words(
    "阿莫西林 头孢克肟 头孢曲松钠 左氧氟沙星 莫西沙星 阿奇霉素 克拉霉素 甲硝唑 奥司他韦 阿昔洛韦 "
    "氨氯地平 硝苯地平 缬沙坦 厄贝沙坦 氯沙坦钾 美托洛尔 比索洛尔 卡维地洛 氢氯噻嗪 呋塞米 "
    "阿托伐他汀钙 瑞舒伐他汀钙 辛伐他汀 阿司匹林 氯吡格雷 "
    "替格瑞洛 华法林钠 利伐沙班 单硝酸异山梨酯 曲美他嗪 "
    "二甲双胍 格列美脲 格列齐特 阿卡波糖 西格列汀 "
    "达格列净 吡格列酮 甘精胰岛素 门冬胰岛素 左甲状腺素钠 "
    "奥美拉唑 泮托拉唑 雷贝拉唑 铝碳酸镁 多潘立酮 莫沙必利 蒙脱石 乳果糖 美沙拉秦 熊去氧胆酸 "
    "布洛芬 对乙酰氨基酚 塞来昔布 双氯芬酸钠 曲马多 加巴喷丁 普瑞巴林 卡马西平 丙戊酸钠 左乙拉西坦 "
    "舍曲林 帕罗西汀 艾司西酞普兰 奥氮平 利培酮 阿立哌唑 喹硫平 阿普唑仑 艾司唑仑 佐匹克隆 "
    "孟鲁司特钠 氨溴索 乙酰半胱氨酸 沙丁胺醇 布地奈德 噻托溴铵 氯雷他定 西替利嗪 地塞米松 泼尼松 "
    "甲氨蝶呤 来氟米特 别嘌醇 非布司他 阿仑膦酸钠 骨化三醇 碳酸钙 维生素D 叶酸 甲钴胺 "
    "卡培他滨 替吉奥 来曲唑 阿那曲唑 他莫昔芬 吉非替尼 埃克替尼 奥希替尼 伊马替尼 恩替卡韦"
)
_PATENT_STEMS = _words(
    "复方丹参 银杏叶 血塞通 通心络 麝香保心 参松养心 稳心 脑心通 丹红 舒血宁 "
    "连花清瘟 蓝芩 蒲地蓝消炎 金振 小儿豉翘清热 藿香正气 防风通圣 板蓝根 银黄 清开灵 "
    "六味地黄 金匮肾气 逍遥 归脾 补中益气 参苓白术 香砂养胃 附子理中 桂枝茯苓 益母草 "
    "仙灵骨葆 颈舒 腰痹通 独活寄生 雷公藤多苷 正清风痛宁 云南白药 三七伤药 活血止痛 跌打丸"
)
_SOLID_SPECS = ("5mg", "10mg", "20mg", "50mg", "0.1g", "0.25g", "0.5g", "1g")
# Each dosage form with the strengths it comes in.
_DRUG_FORMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("片", _SOLID_SPECS),
    ("胶囊", _SOLID_SPECS),
    ("缓释片", _SOLID_SPECS),
    ("肠溶片", _SOLID_SPECS),
    ("分散片", _SOLID_SPECS),
    ("颗粒", ("1g", "2g", "3g", "5g", "6g", "10g")),
    ("注射液", ("1ml", "2ml", "5ml", "10ml", "20ml", "100ml")),
    ("口服溶液", ("10ml", "60ml", "100ml", "120ml")),
)
_MAKERS = (
    "华康制药",
    "恒安药业",
    "长青制药",
    "瑞泽生物",
    "博源药业",
    "济民制药",
    "天宁药业",
    "泰和医药",
    "康宁制药",
    "安泰生物",
    "新元药业",
    "同仁堂",
)
_HERBS = _words(
    "黄芪 当归 党参 白术 茯苓 甘草 川芎 白芍 熟地黄 生地黄 山药 枸杞子 丹参 三七 红花 桃仁 "
    "柴胡 黄芩 黄连 黄柏 金银花 连翘 板蓝根 菊花 薄荷 桔梗 半夏 陈皮 厚朴 枳壳 "
    "杜仲 牛膝 续断 骨碎补 何首乌 女贞子 山茱萸 五味子 麦冬 天冬 玉竹 百合 酸枣仁 远志 "
    "大黄 芒硝 麻黄 桂枝 附子 干姜 肉桂 吴茱萸 砂仁 豆蔻 木香 香附 延胡索 郁金"
)
_HERB_PROCESSING = ("", "炒", "炙", "酒", "醋", "盐", "蜜炙", "麸炒")
_HERB_ORIGINS = ("甘肃", "云南", "四川", "河南", "安徽", "湖北", "山西", "内蒙古")
_SITES = _words(
    "头颅 颈部 胸部 腹部 盆腔 脊柱 腰椎 颈椎 膝关节 髋关节 肩关节 肘关节 踝关节 手部 足部 "
    "心脏 肝脏 胆囊 胰腺 脾脏 肾脏 膀胱 前列腺 子宫 卵巢 乳腺 甲状腺 眼部 耳部 鼻部 咽喉 口腔 "
    "食管 胃 十二指肠 结肠 直肠 肺 支气管 血管"
)
_PROCEDURES = _words(
    "CT平扫 CT增强扫描 磁共振平扫 磁共振增强扫描 彩色多普勒超声 X线摄影 数字减影血管造影 "
    "核素显像 病理活检 穿刺术 引流术 切除术 部分切除术 修补术 成形术 置换术 固定术 重建术 "
    "取石术 造口术 吻合术 松解术 探查术 清创术 内镜检查 内镜下治疗 激光治疗 射频消融术 "
    "放射治疗 针刺 推拿 艾灸 康复评定 功能训练 换药 注射 封闭治疗 冲洗 冷冻治疗 热疗"
)
_PROCEDURE_VARIANTS = (
    "",
    "（单侧）",
    "（双侧）",
    "（经腹腔镜）",
    "（经内镜）",
    "（急诊加收）",
    "（儿童加收）",
    "（复杂）",
)
_CONSUMABLE_KINDS = _words(
    "一次性使用输液器 一次性使用注射器 留置针 中心静脉导管 导尿管 胃管 引流管 吸痰管 气管插管 "
    "可吸收缝合线 皮肤吻合器 管型吻合器 止血夹 医用敷料 负压引流装置 冠状动脉支架 外周血管支架 "
    "球囊扩张导管 导丝 造影导管 起搏电极导线 人工髋关节 人工膝关节 骨板 接骨螺钉 髓内钉 椎弓根钉 "
    "人工晶状体 疝修补片 血液透析器 透析管路 胰岛素泵耗材 血糖试纸 心电电极"
)
_CONSUMABLE_SPECS = _words(
    "S M L XL 4F 5F 6F 7F 8F 10F 12F Φ2.0 Φ2.5 Φ3.0 Φ3.5 Φ4.0 标准型 加长型 儿童型 成人型"
)
# Shares of a province's generated catalogue: drugs, herbal pieces, service items, consumables.
_WEIGHTS = {"101": 0.60, "102": 0.05, "201": 0.22, "301": 0.13}
_SHARES_B = ("0.05", "0.10", "0.10", "0.15", "0.20", "0.30")


def _drug_names() -> Iterator[str]:
    for stem, (form, specs), maker in itertools.product(
        _DRUG_STEMS + _PATENT_STEMS, _DRUG_FORMS, _MAKERS
    ):
        for spec in specs:
            yield f"{stem}{form} {spec}（{maker}）"


def _herb_names() -> Iterator[str]:
    for herb, processing, origin in itertools.product(_HERBS, _HERB_PROCESSING, _HERB_ORIGINS):
        yield f"{processing}{herb}（{origin}）"


def _service_names() -> Iterator[str]:
    for site, procedure, variant in itertools.product(_SITES, _PROCEDURES, _PROCEDURE_VARIANTS):
        yield f"{site}{procedure}{variant}"


def _consumable_names() -> Iterator[str]:
    kinds = itertools.product(_CONSUMABLE_KINDS, _CONSUMABLE_SPECS, _MAKERS)
    for kind, spec, maker in kinds:
        yield f"{kind} {spec}（{maker}）"


def _sample(rng: random.Random, names: Iterator[str], count: int) -> list[str]:
    pool = list(names)
    if count > len(pool):
        raise ValueError(f"only {len(pool)} distinct names for {count} items")
    return rng.sample(pool, count)


def _price(rng: random.Random, low: float, high: float) -> str:
    """A log-uniform price in yuan: many cheap items, a few dear ones."""
    return f"{low * (high / low) ** rng.random():.2f}"


def national_items(count: int, seed: int) -> list[Item]:
    """`count` generated items with distinct codes and names, the same for a given seed."""
    if count == 0:
        return []
    rng = random.Random(seed)
    sizes = {kind: round(count * weight) for kind, weight in _WEIGHTS.items()}
    sizes["101"] += count - sum(sizes.values())
    items = []
    for serial, name in enumerate(_sample(rng, _drug_names(), sizes["101"])):
        level = rng.choices(("01", "02", "03"), weights=(35, 55, 10))[0]
        share = rng.choice(_SHARES_B) if level == "02" else "0"
        items.append(Item("101", f"XD{serial:06d}", name, level, share))
    for serial, name in enumerate(_sample(rng, _herb_names(), sizes["102"])):
        level = rng.choices(("01", "02", "03"), weights=(70, 20, 10))[0]
        share = rng.choice(_SHARES_B) if level == "02" else "0"
        items.append(Item("102", f"ZY{serial:06d}", name, level, share))
    for serial, name in enumerate(_sample(rng, _service_names(), sizes["201"])):
        level = rng.choices(("01", "02", "03"), weights=(55, 35, 10))[0]
        share = rng.choice(_SHARES_B) if level == "02" else "0"
        restricted = rng.random()
        items.append(
            Item(
                "201",
                f"XS{serial:06d}",
                name,
                level,
                share,
                cap=_price(rng, 2, 5000),
                min_level="3" if restricted < 0.03 else ("2" if restricted < 0.06 else ""),
                med_types="21" if restricted > 0.98 else "",
            )
        )
    for serial, name in enumerate(_sample(rng, _consumable_names(), sizes["301"])):
        level = rng.choices(("01", "02", "03"), weights=(20, 70, 10))[0]
        share = rng.choice(("0.10", "0.20", "0.30", "0.40")) if level == "02" else "0"
        items.append(Item("301", f"XC{serial:06d}", name, level, share, cap=_price(rng, 1, 30000)))
    return items


def province_rows(prov: str, items: list[Item], seed: int) -> Iterator[list[str]]:
    """A province's rows: the reference items, then its version of the national list (about 3%
    left out, and about 5% of the 乙 items with a share of its own)."""
    for item in REFERENCE_ITEMS:
        yield item.row(prov)
    rng = random.Random(f"{seed}-{prov}")
    for item in items:
        draw = rng.random()
        if draw < 0.03:
            continue
        row = item.row(prov)
        if item.level == "02" and draw > 0.95:
            row[5] = rng.choice(_SHARES_B)
        yield row
