/// Name and place lists for synthetic residents. Common surnames and given names, and
/// Asahikawa's town names (旭川市の町名): combinations, not people.
enum Names {
    struct Kana { let kanji: String; let kana: String }
    struct Foreign { let roman: String; let kana: String; let country: String }

    static let surnames: [Kana] = [
        .init(kanji: "佐藤", kana: "サトウ"), .init(kanji: "鈴木", kana: "スズキ"), .init(kanji: "高橋", kana: "タカハシ"),
        .init(kanji: "田中", kana: "タナカ"), .init(kanji: "伊藤", kana: "イトウ"), .init(kanji: "渡辺", kana: "ワタナベ"),
        .init(kanji: "山本", kana: "ヤマモト"), .init(kanji: "中村", kana: "ナカムラ"), .init(kanji: "小林", kana: "コバヤシ"),
        .init(kanji: "加藤", kana: "カトウ"), .init(kanji: "吉田", kana: "ヨシダ"), .init(kanji: "山田", kana: "ヤマダ"),
        .init(kanji: "佐々木", kana: "ササキ"), .init(kanji: "山口", kana: "ヤマグチ"), .init(kanji: "松本", kana: "マツモト"),
        .init(kanji: "井上", kana: "イノウエ"), .init(kanji: "木村", kana: "キムラ"), .init(kanji: "林", kana: "ハヤシ"),
        .init(kanji: "斎藤", kana: "サイトウ"), .init(kanji: "清水", kana: "シミズ"), .init(kanji: "山崎", kana: "ヤマザキ"),
        .init(kanji: "森", kana: "モリ"), .init(kanji: "池田", kana: "イケダ"), .init(kanji: "橋本", kana: "ハシモト"),
        .init(kanji: "阿部", kana: "アベ"), .init(kanji: "石川", kana: "イシカワ"), .init(kanji: "工藤", kana: "クドウ"),
        .init(kanji: "菊地", kana: "キクチ"), .init(kanji: "三浦", kana: "ミウラ"), .init(kanji: "藤田", kana: "フジタ"),
        .init(kanji: "村上", kana: "ムラカミ"), .init(kanji: "近藤", kana: "コンドウ"), .init(kanji: "坂本", kana: "サカモト"),
        .init(kanji: "遠藤", kana: "エンドウ"), .init(kanji: "青木", kana: "アオキ"), .init(kanji: "藤井", kana: "フジイ"),
        .init(kanji: "西村", kana: "ニシムラ"), .init(kanji: "福田", kana: "フクダ"), .init(kanji: "太田", kana: "オオタ"),
        .init(kanji: "三上", kana: "ミカミ"),
    ]

    static let maleGiven: [Kana] = [
        .init(kanji: "翔太", kana: "ショウタ"), .init(kanji: "大輔", kana: "ダイスケ"), .init(kanji: "健一", kana: "ケンイチ"),
        .init(kanji: "誠", kana: "マコト"), .init(kanji: "浩二", kana: "コウジ"), .init(kanji: "拓也", kana: "タクヤ"),
        .init(kanji: "蓮", kana: "レン"), .init(kanji: "悠真", kana: "ユウマ"), .init(kanji: "隆", kana: "タカシ"),
        .init(kanji: "勝", kana: "マサル"), .init(kanji: "和夫", kana: "カズオ"), .init(kanji: "陽翔", kana: "ハルト"),
        .init(kanji: "直樹", kana: "ナオキ"), .init(kanji: "修", kana: "オサム"), .init(kanji: "湊", kana: "ミナト"),
        .init(kanji: "智也", kana: "トモヤ"),
    ]

    static let femaleGiven: [Kana] = [
        .init(kanji: "陽子", kana: "ヨウコ"), .init(kanji: "美咲", kana: "ミサキ"), .init(kanji: "恵子", kana: "ケイコ"),
        .init(kanji: "さくら", kana: "サクラ"), .init(kanji: "由美", kana: "ユミ"), .init(kanji: "結衣", kana: "ユイ"),
        .init(kanji: "花子", kana: "ハナコ"), .init(kanji: "真由美", kana: "マユミ"), .init(kanji: "陽菜", kana: "ヒナ"),
        .init(kanji: "久美子", kana: "クミコ"), .init(kanji: "芽依", kana: "メイ"), .init(kanji: "千尋", kana: "チヒロ"),
        .init(kanji: "幸子", kana: "サチコ"), .init(kanji: "凛", kana: "リン"), .init(kanji: "智子", kana: "トモコ"),
        .init(kanji: "葵", kana: "アオイ"),
    ]

    static let foreign: [Foreign] = [
        .init(roman: "NGUYEN VAN AN", kana: "グエン　ヴァン　アン", country: "VNM"),
        .init(roman: "WANG XIAOMING", kana: "ワン　シャオミン", country: "CHN"),
        .init(roman: "KIM MINJUN", kana: "キム　ミンジュン", country: "KOR"),
        .init(roman: "SANTOS MARIA", kana: "サントス　マリア", country: "PHL"),
        .init(roman: "SMITH JOHN", kana: "スミス　ジョン", country: "USA"),
        .init(roman: "TRAN THI HOA", kana: "チャン　ティ　ホア", country: "VNM"),
    ]

    /// 旭川市の町名 ("…条通" towns take 丁目 numbering; others 条・丁目).
    static let asahikawaTowns: [String] = [
        "条通", "豊岡", "東光", "神楽", "神楽岡", "緑が丘東", "末広", "末広東", "春光", "春光台", "旭町", "曙",
        "大町", "錦町", "忠和", "永山", "東旭川北", "新富", "宮下通", "花咲町", "川端町", "住吉", "南が丘", "亀吉",
    ]
}
